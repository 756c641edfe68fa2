"""`python -m clabgen.dataplane --spec SPEC.json --state-dir DIR`: the per-lab dataplane process."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .daemon import run
from .forward import IMPLS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clabgen.dataplane", description=__doc__)
    parser.add_argument("--spec", type=Path, required=True, help="JSON: {\"tunnels\": [...]}")
    parser.add_argument("--state-dir", type=Path, required=True, help="pid, log and ready files go here")
    parser.add_argument("--impl", choices=IMPLS, default="auto", help="forwarding loops (default: C if it builds)")
    args = parser.parse_args(argv)
    return run(args.spec, args.state_dir, args.impl)


if __name__ == "__main__":
    sys.exit(main())
