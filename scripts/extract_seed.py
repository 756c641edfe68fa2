#!/usr/bin/env python3
"""Cut the seed document's files out into tests/data/seed/ (fixtures for the fidelity tests).

The author's `#` annotation lines (not config.boot syntax) and trailing blanks are dropped.
Usage: python3 scripts/extract_seed.py [SEED_TXT] [OUT_DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path


def _block(lines: list[str], start: str, end_pred) -> list[str]:
    i = next(k for k, line in enumerate(lines) if line.strip() == start)
    out = []
    for line in lines[i + 1:]:
        if end_pred(line):
            break
        out.append(line)
    return out


def extract(text: str) -> dict[str, str]:
    lines = [line.rstrip() for line in text.splitlines()]
    files: dict[str, str] = {}
    clab = _block(lines, "# ipip.clab.yml", lambda s: s.startswith("c |"))
    files["ipip.clab.yml"] = "\n".join(clab).strip("\n") + "\n"
    for gw in ("gw1", "gw2"):
        cfg = _block(lines, f"# ./startup-conf/{gw}.cfg", lambda s: False)
        end = next(k for k, s in enumerate(cfg) if s.startswith("/* Release version"))
        body = [s for s in cfg[:end + 1] if not s.lstrip().startswith("#")]
        files[f"{gw}.cfg"] = "\n".join(body) + "\n"
        listing = _block(lines, f"root@{gw}:/# show configuration commands", lambda s: not s.startswith("set "))
        files[f"{gw}.set"] = "\n".join(listing) + "\n"
    return files


def main() -> None:
    seed = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/seed/000_1f42ed51a86e9b1c.txt")
    out = Path(sys.argv[2] if len(sys.argv) > 2 else "tests/data/seed")
    out.mkdir(parents=True, exist_ok=True)
    for name, body in extract(seed.read_text(encoding="utf-8")).items():
        (out / name).write_text(body, encoding="utf-8")
        print(out / name)


if __name__ == "__main__":
    main()
