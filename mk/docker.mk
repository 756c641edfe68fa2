# Container engine, local node images and containerlab (included by the main Makefile).
# Uses its variables: BIN (.venv/bin) and the `deps` / $(BIN)/clabgen targets.

CLAB_VERSION ?= 0.69.3
CLAB_MODULE := github.com/srl-labs/containerlab
CLAB_BIN := $(CURDIR)/bin/containerlab
# Every containerlab command otherwise sends a HEAD to github.com/srl-labs/containerlab/releases/latest.
export CLAB_VERSION_CHECK := disable

.PHONY: docker-up docker-down image containerlab

# Start a private dockerd (no bridge, no iptables) unless an engine already answers.
docker-up: deps
	scripts/docker-up.sh

# Stop only the dockerd that docker-up started.
docker-down:
	scripts/docker-down.sh

# clabgen/node:<hash> and clabgen/vyos-emu:<hash> (+ :latest); skipped when the tags exist.
image: $(BIN)/clabgen docker-up
	PYTHON=$(BIN)/python scripts/build-images.sh

# `go install $(CLAB_MODULE)@v$(CLAB_VERSION)` does not work here: it looks up the
# module's deprecation via .../@v/list, which the proxy answers 403 (only pinned
# versions are served), and containerlab's go.mod has replace directives, which
# `go install pkg@version` refuses. So: download that exact module version (its
# .info/.zip are served) and build inside it with its own go.mod/go.sum, with the
# ldflags of its .goreleaser.yml. Skipped when bin/containerlab is that version.
containerlab:
	@if [ -x $(CLAB_BIN) ] && $(CLAB_BIN) version 2>/dev/null | grep -q 'version: $(CLAB_VERSION)$$'; then \
	  echo "containerlab $(CLAB_VERSION) already in bin/"; \
	else \
	  set -e; mkdir -p bin; \
	  info=$$(go mod download -json $(CLAB_MODULE)@v$(CLAB_VERSION)); \
	  dir=$$(printf '%s' "$$info" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])'); \
	  commit=$$(printf '%s' "$$info" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("Origin",{}).get("Hash","")[:7])'); \
	  echo "building containerlab $(CLAB_VERSION) ($$commit) from $$dir"; \
	  start=$$(date +%s); \
	  go build -C "$$dir" -trimpath -o $(CLAB_BIN) -ldflags "-s -w \
	    -X $(CLAB_MODULE)/cmd/version.Version=$(CLAB_VERSION) \
	    -X $(CLAB_MODULE)/cmd/version.commit=$$commit" .; \
	  echo "built bin/containerlab in $$(( $$(date +%s) - start ))s"; \
	fi
