# Container engine, local node images and containerlab (included by the main Makefile).
# Uses its variables: BIN (.venv/bin) and the `deps` / $(BIN)/clabgen targets.

CLAB_VERSION ?= 0.69.3
# Every containerlab command otherwise sends a HEAD to github.com/srl-labs/containerlab/releases/latest.
export CLAB_VERSION_CHECK := disable

# wireguard-go (golang.zx2c4.com/wireguard) at a pinned version; see scripts/build-wireguard-go.sh.
WIREGUARD_GO_VERSION ?= v0.0.0-20260522210424-ecfc5a8d5446
export CLABGEN_WIREGUARD_GO ?= $(CURDIR)/bin/wireguard-go

.PHONY: docker-up docker-down image containerlab wireguard-go

# Start a private dockerd (no bridge, no iptables) unless an engine already answers.
docker-up: deps
	scripts/docker-up.sh

# Stop only the dockerd that docker-up started.
docker-down:
	scripts/docker-down.sh

# The userspace WireGuard the emulated gateways run where the kernel has none (bin/wireguard-go);
# the vyos-emu image copies it in. Skipped when bin/wireguard-go already is that version.
wireguard-go:
	scripts/build-wireguard-go.sh $(WIREGUARD_GO_VERSION) bin/wireguard-go

# clabgen/node:<hash> and clabgen/vyos-emu:<hash> (+ :latest); skipped when the tags exist.
image: $(BIN)/clabgen docker-up wireguard-go
	PYTHON=$(BIN)/python scripts/build-images.sh

# bin/containerlab = pinned upstream release + images/containerlab/$(CLAB_VERSION).patch.
# Why not `go install ...@version` and why the patch: see scripts/docker-build-containerlab.sh
# and docs/containerlab.md. Skipped when bin/containerlab already is that build.
containerlab:
	scripts/docker-build-containerlab.sh $(CLAB_VERSION) bin/containerlab
