# clabgen developer targets. `make test` works on a bare machine (it installs what it needs).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
LAB ?= ipip
RUNTIME ?= netns
# `make deploy` picks containerlab > docker > netns (--runtime auto) unless RUNTIME is given; demo stays on netns.
deploy: RUNTIME := $(if $(filter file,$(origin RUNTIME)),auto,$(RUNTIME))
LABS := $(wildcard labs/*/intent.yml)
ORACLES ?= ../shared/oracles
# The patched containerlab `make containerlab` builds (docs/containerlab.md); clabgen looks here first.
export CLABGEN_CONTAINERLAB ?= $(CURDIR)/bin/containerlab
# Debian packages the tests use (ping, captures and their decode, throughput, kernel-tunnel peer, docker,
# FRR for the emulated gateways' routing protocols, the topology pictures, the 80-column terminal tests,
# clang/llvm/libbpf-dev to build the BPF tunnel's program).
DEB_PKGS ?= iproute2 iputils-ping tcpdump tshark iperf3 user-mode-linux debootstrap docker.io patch util-linux procps gcc \
            frr graphviz tmux clang llvm libbpf-dev $(CRYPTO_PKGS)
# Encrypted tunnels: `wg` (wireguard-go is built: `make wireguard-go`) and strongSwan's charon with
# userspace ESP (kernel-libipsec) and AES-GCM through OpenSSL.
CRYPTO_PKGS ?= wireguard-tools strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-standard-plugins

.PHONY: install deps deps-demo test test-install render check lint bench deploy verify destroy demo clean

$(BIN)/clabgen: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

# The checkout's bytecode, as pip compiles an installed wheel's: this environment sets
# PYTHONDONTWRITEBYTECODE, so without it every clabgen process compiles every module again (an
# edited module is still compiled afresh in memory: Python checks each source's mtime and size).
install: $(BIN)/clabgen
	@$(BIN)/python -m compileall -q src >/dev/null

# The demo needs only these (no container engine, no image tools).
DEMO_PKGS ?= iproute2 iputils-ping util-linux procps gcc

deps-demo:
	@$(MAKE) --no-print-directory deps DEB_PKGS="$(DEMO_PKGS)"

deps:
	@missing=""; for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi

# Everything the tests use, from a bare machine: venv, Debian packages, a container engine (only
# stopped again if this run started it), the local node images and containerlab. A missing engine
# or containerlab makes their tests skip with the reason, never hides the other tests.
test: install deps
	@scripts/docker-up.sh || echo "test: no container engine; docker/containerlab tests will skip"
	@$(MAKE) --no-print-directory wireguard-go || echo "test: wireguard-go not built; WireGuard tests will skip"
	@$(MAKE) --no-print-directory image containerlab || echo "test: images/containerlab not built; their tests will skip"
	@set +e; $(BIN)/python -m pytest -q $(PYTEST_ARGS); rc=$$?; scripts/docker-down.sh; exit $$rc

# The install smoke suite alone: sdist -> wheel -> fresh venv and pipx, run outside the checkout.
test-install: install
	$(BIN)/python -m pytest -q -m install $(PYTEST_ARGS)

render: install
	@for f in $(LABS); do $(BIN)/clabgen render $$f || exit 1; done

check: install
	@for f in $(LABS); do $(BIN)/clabgen render $$f --check || exit 1; done
	$(BIN)/python -m pyflakes src tests bench scripts
	$(BIN)/python -m ruff check src tests bench scripts
	$(BIN)/python -m mypy src

# `make bench` runs every section; `make bench SECTIONS="scale-render scale-netns"` only those.
bench: install deps
	$(BIN)/python bench/run.py $(SECTIONS)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info

-include mk/*.mk

# --- running labs (LAB=ipip RUNTIME=netns by default) ---
deploy: install deps
	$(BIN)/clabgen deploy labs/$(LAB) --runtime $(RUNTIME)

verify: install
	$(BIN)/clabgen verify labs/$(LAB)

destroy: install
	$(BIN)/clabgen destroy labs/$(LAB)

# The README's main job: render, deploy, verify, destroy the seed lab with progress output.
demo: install deps-demo
	$(BIN)/clabgen render labs/$(LAB)/intent.yml
	$(BIN)/clabgen deploy labs/$(LAB) --runtime $(RUNTIME)
	$(BIN)/clabgen verify labs/$(LAB) || { $(BIN)/clabgen destroy labs/$(LAB); exit 1; }
	$(BIN)/clabgen destroy labs/$(LAB)
