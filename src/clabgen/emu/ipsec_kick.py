"""`python -m clabgen.emu.ipsec_kick SECONDS CONN/CHILD...`: initiate again what did not come up.

An initiator's `start_action = start` tries once. If the peer's charon already answers but has not
loaded its connections yet (gateways boot one after another), the peer says NO_PROPOSAL_CHOSEN
and the initiator gives up for good. On a real VyOS the kernel repairs this: the responder's
trap policy (XFRM) raises an acquire as soon as its own traffic (OSPF hellos over GRE) needs the
SA, and charon initiates from there. strongSwan's userspace ESP (kernel-libipsec) raises no
acquires ("could not find an outbound IPsec SA ..., dropping packet"), so the emulation stands in
for them: this helper runs next to charon (same namespace, same private /run), and while a
connection has no IKE SA at all, it initiates the child again, until every listed child is
INSTALLED or SECONDS have passed; then it exits. It never touches an SA in progress or up, and
says nothing of keys (swanctl never prints a PSK).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

FIRST = 3.0          # seconds the start action gets before the first look
EVERY = 2.0


def _swanctl(*args: str, timeout: float = 10.0) -> str:
    try:
        done = subprocess.run(["swanctl", *args], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout


def main(argv: list[str]) -> int:
    if len(argv) < 3 or "/" not in "".join(argv[2:]):
        print("usage: python -m clabgen.emu.ipsec_kick SECONDS CONN/CHILD...", file=sys.stderr)
        return 2
    deadline = time.monotonic() + float(argv[1])
    pending = [tuple(a.split("/", 1)) for a in argv[2:]]
    time.sleep(FIRST)
    while pending and time.monotonic() < deadline:
        for conn, child in list(pending):
            sas = _swanctl("--list-sas", "--ike", conn)
            if f"{child}: #" in sas and "INSTALLED" in sas.split(f"{child}: #", 1)[1].split("\n", 1)[0]:
                pending.remove((conn, child))
            elif not sas.strip():           # no IKE SA at all (none in progress): try again
                print(f"{time.strftime('%H:%M:%S')} {conn}: no IKE SA, initiating {child} again", flush=True)
                _swanctl("--initiate", "--child", child, "--timeout", "3", timeout=8)
        if pending:
            time.sleep(EVERY)
    print(f"{time.strftime('%H:%M:%S')} done: {'all up' if not pending else 'not up: ' + ', '.join(c for _, c in pending)}",
          flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("STRONGSWAN_CONF", "/run/strongswan.conf")
    sys.exit(main(sys.argv))
