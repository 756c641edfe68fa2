"""The dataplane process: open every tunnel, forward until SIGTERM/SIGINT, tidy up.

State files in the state dir: dataplane.pid (written first), dataplane.log, and dataplane.ready
(JSON, written only once every tunnel forwards). Both pid and ready are removed on exit.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from . import fastpath, links
from .endpoint import Endpoint, open_endpoint
from .forward import StopSignal, Worker, make_pool
from .nsenter import entered
from .spec import DataplaneError, load_spec

PID_FILE = "dataplane.pid"
LOG_FILE = "dataplane.log"
READY_FILE = "dataplane.ready"
log = logging.getLogger("clabgen.dataplane")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _pick_impl(impl: str) -> tuple[Any, str]:
    """The C library, or None for the Python loops and why; 'auto' falls back with a log line."""
    if impl == "python":
        return None, "--impl python"
    try:
        return fastpath.load(), ""
    except Exception as exc:  # no compiler, no headers, odd platform
        if impl == "c":
            raise DataplaneError(f"C fast path unavailable: {exc}") from exc
        log.warning("C fast path unavailable, using pure Python: %s", exc)
        return None, (str(exc).splitlines() or [type(exc).__name__])[0].rstrip(": ")


def _close_all(endpoints: list[Endpoint], close_fds: bool) -> None:
    """Drop every TUN link; a loop still stuck in a syscall keeps its fds until we exit."""
    for ep in endpoints:
        if close_fds:
            ep.close()
        # Closing the last fd of a non-persistent TUN removes it; make sure, by name.
        try:
            with entered(ep.spec.netns):
                if links.delete_link(ep.spec.ifname):
                    log.info("deleted leftover link %s", ep.spec.ifname)
        except OSError as exc:  # namespace already gone: so is the link
            log.info("cleanup of %s skipped: %s", ep.spec.ifname, exc)


def run(spec_path: Path, state_dir: Path, impl: str = "auto") -> int:
    """Serve the spec until told to stop; exit status 0 after a clean stop, 1 on setup failure."""
    state_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(filename=state_dir / LOG_FILE, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")
    pid_file, ready_file = state_dir / PID_FILE, state_dir / READY_FILE
    ready_file.unlink(missing_ok=True)
    _write_atomic(pid_file, f"{os.getpid()}\n")
    stop = StopSignal(*os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK))
    stopping = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("got %s, stopping", signal.Signals(signum).name)
        stopping.set()
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    endpoints: list[Endpoint] = []
    workers: list[Worker] = []
    status = 0
    try:
        tunnels = load_spec(spec_path)
        lib, fallback = _pick_impl(impl)
        impl_name = "c" if lib is not None else "python"
        for spec in tunnels:
            if stopping.is_set():
                break
            endpoints.append(open_endpoint(spec, vnet_hdr=lib is not None))
            log.info("opened %s %s in netns %s: %s -> %s, mtu %d", spec.mode, spec.ifname, spec.netns,
                     spec.local, spec.remote, spec.mtu)
        workers = make_pool(endpoints, lib, stop)
        threads = list(dict.fromkeys(w.thread for w in workers))  # a thread serves several workers
        for thread in threads:
            thread.start()
        ready = {"pid": os.getpid(), "impl": impl_name, **({"fallback": fallback} if fallback else {}),
                 "threads": len(threads),
                 "tunnels": [{**ep.spec.as_dict(), "kind": "userspace"} for ep in endpoints]}
        if not stopping.is_set():
            _write_atomic(ready_file, json.dumps(ready, indent=2) + "\n")
            log.info("forwarding %d tunnel end(s) on %d thread(s) with the %s loops", len(endpoints), len(threads),
                     impl_name)
        while not stopping.wait(1.0):
            for thread in threads:
                if not thread.is_alive():
                    served = [w for w in workers if w.thread is thread]
                    failed = next((w for w in served if w.stats().get("error")), served[0])
                    raise DataplaneError(f"{thread.name} stopped: {failed.name}: {failed.stats()}")
    except Exception as exc:
        log.exception("dataplane failed: %s", exc)
        status = 1
    finally:
        stop.set()
        deadline = time.monotonic() + 2.0
        for worker in workers:
            worker.thread.join(max(0.0, deadline - time.monotonic()))
            log.info("%s: %s", worker.name, worker.stats())
        stuck = list(dict.fromkeys(w.thread.name for w in workers if w.thread.is_alive()))
        if stuck:
            log.warning("loops %s did not stop; their descriptors close at exit", stuck)
        _close_all(endpoints, close_fds=not stuck)
        ready_file.unlink(missing_ok=True)
        pid_file.unlink(missing_ok=True)
        log.info("exit %d", status)
        logging.shutdown()
    return status
