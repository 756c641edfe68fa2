"""`python3 -m clabgen.emu.boot CONFIG`: the main process of a clabgen/vyos-emu container.

containerlab (and the docker runtime) attach a node's links after the container starts, so this
waits until the interfaces config.boot names exist, applies the config with the same applier and
userspace tunnel as the netns runtime, starts FRR when the config has routing protocols, reports in
/run/clabgen/emu/status.json, and keeps running as PID 1 (reaping children) until SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from .. import dataplane, netlink
from ..errors import ClabgenError
from . import RouteFacts, vyos
from . import apply as emu_apply

STATE = Path("/run/clabgen/emu")
STATUS = STATE / "status.json"
WAIT_LINKS = float(os.environ.get("CLABGEN_EMU_WAIT", "120"))
ROUTE_FACTS_ENV = "CLABGEN_STATIC_ROUTES"
TUNNELS_ENV = "CLABGEN_TUNNELS"          # the tunnel backend deploy --tunnels asked for (absent: auto)


def _log(msg: str) -> None:
    print(f"clabgen-emu: {msg}", flush=True)


def _write_status(data: dict[str, object], state: Path = STATE) -> None:
    state.mkdir(parents=True, exist_ok=True)
    status = state / STATUS.name
    tmp = status.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, status)


def boot(config: Path, state: Path = STATE) -> dict[str, object]:
    """Check config.boot (every problem as FILE:LINE, before anything is applied), then apply it."""
    deadline = time.monotonic() + WAIT_LINKS
    while not config.is_file():
        if time.monotonic() > deadline:
            raise FileNotFoundError(f"{config} never appeared")
        time.sleep(0.1)
    cfg = vyos.load(config)
    wanted = {i.ifname for i in cfg.interfaces if i.ifname != "lo"}
    while True:
        present = {link.ifname for link in netlink.links(None)}
        if wanted <= present or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    missing = sorted(wanted - present)
    done = emu_apply.apply_links(None, cfg, tunnels=os.environ.get(TUNNELS_ENV, "auto"))
    if done.userspace:
        dataplane.start({"tunnels": done.userspace}, state)
    # FRR, when the config has routing, with the container's own /etc/frr and /run/frr (run_dir None).
    emu_apply.apply_routes(None, cfg, done, route_facts(os.environ.get(ROUTE_FACTS_ENV, "")), None)
    status = {"applied": True, "config": str(config), "interfaces": done.interfaces,
              "kernel_tunnels": done.kernel_tunnels, "userspace_tunnels": [t["ifname"] for t in done.userspace],
              "tunnels": [f"{t} (kernel)" for t in done.kernel_tunnels]
              + [f"{t['ifname']} (bpf {t['mode']})" for t in done.bpf_tunnels]
              + [f"{t['ifname']} (userspace {t['mode']})" for t in done.userspace],
              "routes": done.routes, "frr": list(done.frr),
              "crypto": done.crypto.describe() if done.crypto else [],
              "warnings": done.warnings + [f"interface {m} never appeared" for m in missing]}
    _write_status(status, state)
    _log(f"VyOS dataplane emulated from {config}: {json.dumps(status)}")
    return status


def route_facts(value: str) -> RouteFacts:
    """How the node's platform installs static routes, as the runtime passes them from the lab
    contract (`proto:metric`, e.g. `static:20`); VyOS's FRR defaults when it does not."""
    proto, _, metric = value.partition(":")
    if not proto:
        return RouteFacts("static", 20)
    return RouteFacts(proto, int(metric) if metric.isdigit() else None)


def start(config: Path, state: Path = STATE) -> dict[str, object]:
    """boot(), reporting a failure in status.json instead of raising: a config problem as its
    FILE:LINE lines (what the runtime shows the user), anything else with its exception type."""
    try:
        return boot(config, state)
    except ClabgenError as exc:
        error = "\n".join(str(p) for p in exc.problems)
    except Exception as exc:  # keep the container up so the error can be read with `docker logs`
        error = f"{type(exc).__name__}: {exc}"
    _log(f"failed: {error}")
    status: dict[str, object] = {"applied": False, "config": str(config), "error": error}
    _write_status(status, state)
    return status


def main(argv: list[str]) -> int:
    config = Path(argv[1] if len(argv) > 1 else "/opt/vyatta/etc/config/config.boot")
    stopping = False

    def on_term(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    start(config)
    while not stopping:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)   # PID 1 reaps orphans
        except ChildProcessError:
            pid = 0
        if pid == 0:
            time.sleep(0.5)
    dataplane.stop(STATE)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
