"""state.json is typed and versioned; the per-lab lock serialises processes and leaves no file."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import pytest

from clabgen.runtimes import state


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "run"
    monkeypatch.setattr(state, "RUN_DIR", d)
    return d


def test_state_round_trips_and_refuses_other_versions(run_dir: Path) -> None:
    s = state.new("lab1", "netns", Path("/labs/lab1"), namespaces=("clab-lab1-a",), tunnels="auto")
    state.write(s)
    assert state.read("lab1") == s
    data = json.loads((run_dir / "lab1" / "state.json").read_text())
    data["schema"], data["generator"] = 0, "clabgen 0.1.0"
    (run_dir / "lab1" / "state.json").write_text(json.dumps(data))
    with pytest.raises(state.StateError, match=r"state.json: written by clabgen 0.1.0; this is clabgen .*state schema 1"):
        state.read("lab1")
    assert state.read_quietly("lab1") is None
    (run_dir / "lab1" / "state.json").write_text('{"deployed": true}')
    with pytest.raises(state.StateError):
        state.read("lab1")
    assert state.remove("lab1") and not run_dir.exists()


def _hold(run_dir: str, lab: str, seconds: float, log: str) -> None:
    state.RUN_DIR = Path(run_dir)
    with state.lock(lab):
        with open(log, "a") as f:
            f.write(f"in {time.monotonic()}\n")
        time.sleep(seconds)
        with open(log, "a") as f:
            f.write(f"out {time.monotonic()}\n")


def test_lock_serialises_processes_of_one_lab_and_leaves_nothing(run_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "log"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_hold, args=(str(run_dir), "lab1", 0.2, str(log))) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(20)
    events = [line.split()[0] for line in log.read_text().splitlines()]
    assert events == ["in", "out"] * 4           # never two holders at once
    assert not run_dir.exists()                  # the lock file went with its last holder


def test_different_labs_do_not_wait_for_each_other(run_dir: Path, tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    other = ctx.Process(target=_hold, args=(str(run_dir), "lab2", 2.0, str(tmp_path / "log2")))
    other.start()
    time.sleep(0.3)
    said: list[str] = []
    t0 = time.monotonic()
    with state.lock("lab1", said.append):
        pass
    assert time.monotonic() - t0 < 1.0 and said == []
    other.join(10)


def test_a_waiting_command_says_who_holds_the_lab(run_dir: Path, tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    holder = ctx.Process(target=_hold, args=(str(run_dir), "lab1", 1.0, str(tmp_path / "log")))
    holder.start()
    time.sleep(0.3)
    said: list[str] = []
    with state.lock("lab1", said.append):
        pass
    holder.join(10)
    assert said == [f"waiting for another clabgen command on lab lab1 (pid {holder.pid})"]
