"""Run a gateway's WireGuard interfaces and IPsec peers: the kernel's where it has them, else the
official userspace implementations (wireguard-go; strongSwan's charon with kernel-libipsec).

Both daemons keep fixed paths under /run (wireguard-go's /var/run/wireguard/wg0.sock, charon's
pid file and vici socket), so on the netns runtime each gateway's daemons run with its own
directory mounted over /run (rundir.py); in a container /run is the container's own. Every
file they read or write is inside that directory (inside: /run/...), and goes with the lab's
state directory or the container. Secrets reach the daemons through a pipe (`wg setconf
/dev/stdin`) or a 0600 file in that private directory (swanctl.conf), never argv, never a log.

IPsec follows what vyos-1x renders into swanctl.conf (data/templates/ipsec/swanctl/peer.j2):
proposals `enc-hash-dhgroup`, local/remote ids and addresses, `encap = yes` for forced UDP
encapsulation, children per `tunnel N` with traffic selectors `prefix[proto/]`, start action
`start` for initiators and `trap` (1.4) or `none` (1.2) for responders. With kernel-libipsec
(userspace ESP through the TUN device ipsec0) charon routes the protected traffic via table 220,
so its own IKE/ESP socket is marked (fwmark 0x42) and skips that table, and UDP encapsulation is
always on (libipsec cannot receive raw ESP).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .. import netlink
from ..dataplane import kernel_supports
from ..errors import Problem, RuntimeFailure
from . import rundir
from .vyos import DeviceConfig
from .vyos_crypto import WG_KEY_FILE_12, IpsecPeer, WgInterface

WAIT = 10.0                      # seconds a daemon gets to answer
STRONGSWAN_CONF = "/run/strongswan.conf"   # as the daemons see it (their /run)
SWANCTL_CONF = "/run/swanctl.conf"
CHARON_BIN = Path(os.environ.get("CLABGEN_CHARON", "/usr/lib/ipsec/charon"))
# The plugins charon loads: what VyOS's charon uses for PSK IKEv2 with AES(-GCM)/SHA2/MODP/ECP, plus
# the kernel interface (kernel-libipsec, or only kernel-netlink where the kernel has XFRM).
CHARON_PLUGINS = "random nonce openssl pem pkcs1 x509 pubkey aes sha1 sha2 hmac gcm kdf socket-default vici"
SWANCTL_PLUGINS = "random openssl pem pkcs1 x509 pubkey"
FWMARK = "0x42"
KICK_FOR = 120.0                 # seconds the initiators' children get to come up (ipsec_kick.py)


def wireguard_go() -> str | None:
    """The wireguard-go binary: $CLABGEN_WIREGUARD_GO, else on PATH (`make wireguard-go` builds bin/)."""
    env = os.environ.get("CLABGEN_WIREGUARD_GO")
    if env and os.access(env, os.X_OK):
        return env
    checkout = Path(__file__).resolve().parents[3] / "bin" / "wireguard-go"   # an editable install's checkout
    return shutil.which("wireguard-go") or (str(checkout) if os.access(checkout, os.X_OK) else None)


@functools.cache
def xfrm_supported() -> bool:
    """Whether this kernel does ESP itself: an AES-GCM ESP state can be added in a throwaway
    namespace (a NETLINK_XFRM socket alone is not enough: some kernels answer ENOSYS or lack
    the algorithm). Asked once per process."""
    name = f"clabgen-xfrm-{os.getpid()}"
    if subprocess.run(["ip", "netns", "add", name], capture_output=True).returncode != 0:
        return False
    try:
        added = subprocess.run(["ip", "-n", name, "xfrm", "state", "add", "src", "192.0.2.1", "dst", "192.0.2.2",
                                "proto", "esp", "spi", "0x100", "mode", "tunnel", "aead", "rfc4106(gcm(aes))",
                                "0x" + "00" * 20, "128"], capture_output=True, timeout=10)
        return added.returncode == 0
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


@dataclass
class CryptoApplied:
    wireguard: dict[str, str] = field(default_factory=dict)   # ifname -> "kernel" | "wireguard-go"
    ipsec: str | None = None                                   # "kernel" | "kernel-libipsec"
    pids: dict[str, int] = field(default_factory=dict)         # daemon label -> pid

    def describe(self) -> list[str]:
        """For deploy's progress lines: `wg0 (wireguard-go)`, `IPsec (charon, kernel-libipsec)`."""
        out = [f"{i} (WireGuard, {how})" for i, how in self.wireguard.items()]
        return out + ([f"IPsec (charon, {self.ipsec})"] if self.ipsec else [])


def missing(cfg: DeviceConfig, backend: str = "auto") -> list[str]:
    """What this machine lacks to run the config's WireGuard and IPsec (empty: nothing)."""
    out = []
    if cfg.wireguard:
        if not shutil.which("wg"):
            out.append("`wg` is missing: apt-get install --no-install-recommends wireguard-tools")
        if _wg_backend(backend) == "userspace" and wireguard_go() is None:
            out.append("wireguard-go is missing (this kernel has no WireGuard): `make wireguard-go` builds it "
                       "into bin/ (or set CLABGEN_WIREGUARD_GO)")
    if cfg.ipsec is not None and cfg.ipsec.peers:
        if not os.access(CHARON_BIN, os.X_OK) or not shutil.which("swanctl"):
            out.append("strongSwan is missing: apt-get install --no-install-recommends strongswan-charon "
                       "strongswan-swanctl libcharon-extra-plugins libstrongswan-standard-plugins")
    return out


def _wg_backend(want: str) -> str:
    if want == "auto":
        return "kernel" if kernel_supports("wireguard") else "userspace"
    return want


def _ipsec_backend(want: str) -> str:
    if want == "auto":
        return "kernel" if xfrm_supported() else "userspace"
    return want


class Runner:
    """Starts and asks one gateway's daemons: in namespace `ns` with `run_dir` over /run (netns
    runtime), or in the current namespaces with the real /run (a container: both None)."""

    def __init__(self, ns: str | None, run_dir: Path | None) -> None:
        self.ns = ns
        self.run_dir = run_dir

    def inside(self, path: str) -> Path:
        """A path under the daemons' /run, as this process reaches it."""
        return self.run_dir / Path(path).relative_to("/run") if self.run_dir else Path(path)

    def argv(self, command: list[str]) -> list[str]:
        if self.run_dir is None:
            return command
        return rundir.argv(str(self.run_dir), command, self.ns)

    def run(self, command: list[str], stdin: str | None = None, timeout: float = WAIT) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(command), input=stdin, capture_output=True, text=True, timeout=timeout,
                              stdin=None if stdin is not None else subprocess.DEVNULL)

    def spawn(self, command: list[str], log: str, env: Mapping[str, str] | None = None) -> int:
        """A daemon in the background (its own session, output to `log` under /run); its pid."""
        path = self.inside(log)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab") as out:
            proc = subprocess.Popen(self.argv(command), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True, env={**os.environ, **(env or {})})
        return proc.pid


def start(ns: str | None, cfg: DeviceConfig, run_dir: Path | None, *, backend: str = "auto",
          files: Mapping[str, Path] | None = None,
          configure: Callable[[WgInterface], None] | None = None) -> CryptoApplied:
    """WireGuard interfaces (created, keyed, addressed) and IPsec (charon with the config's peers).
    files: container paths -> host paths (a node's binds), for 1.2's key file on the netns runtime."""
    out = CryptoApplied()
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        run_dir.chmod(0o700)
    runner = Runner(ns, run_dir)
    for wg in cfg.wireguard:
        _wireguard(runner, cfg, wg, _wg_backend(backend), files or {}, out)
        if configure is not None:
            configure(wg)
    if cfg.ipsec is not None and cfg.ipsec.peers:
        _ipsec(runner, cfg, _ipsec_backend(backend), out)
    return out


# --- WireGuard ------------------------------------------------------------------------------


def _fail(cfg: DeviceConfig, line: int, path: str, message: str, hint: str = "") -> RuntimeFailure:
    return RuntimeFailure(Problem(cfg.where(line, path), message, hint))


def _private_key(cfg: DeviceConfig, wg: WgInterface, files: Mapping[str, Path]) -> str:
    if wg.private_key is not None:
        return wg.private_key
    key_file = wg.key_file or WG_KEY_FILE_12
    path = files.get(key_file, Path(key_file))
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(cfg, wg.line, wg.path, f"VyOS 1.2 reads the private key from {key_file}: cannot read it "
                                           f"({getattr(exc, 'strerror', None) or type(exc).__name__})",
                    "the lab binds the gateway's key file there (its topology's binds)") from None
    return text


def _wg_conf(wg: WgInterface, private_key: str) -> str:
    """wg(8) configuration text: what `wg setconf` reads (through a pipe)."""
    lines = ["[Interface]", f"PrivateKey = {private_key}"]
    if wg.port is not None:
        lines.append(f"ListenPort = {wg.port}")
    for p in wg.peers:
        lines += ["", "[Peer]", f"PublicKey = {p.public_key}", f"AllowedIPs = {', '.join(p.allowed_ips)}"]
        if p.psk:
            lines.append(f"PresharedKey = {p.psk}")
        if p.endpoint:
            lines.append(f"Endpoint = {p.endpoint[0]}:{p.endpoint[1]}")
        if p.keepalive:
            lines.append(f"PersistentKeepalive = {p.keepalive}")
    return "\n".join(lines) + "\n"


def _wireguard(runner: Runner, cfg: DeviceConfig, wg: WgInterface, backend: str, files: Mapping[str, Path],
               out: CryptoApplied) -> None:
    key = _private_key(cfg, wg, files)
    if backend == "kernel":
        try:
            netlink.kernel_tunnel(runner.ns, wg.ifname, "wireguard", "0.0.0.0", "0.0.0.0", None)
        except Exception as exc:
            raise _fail(cfg, wg.line, wg.path, f"creating WireGuard interface {wg.ifname}: the kernel refused it: "
                                               f"{exc}") from None
        out.wireguard[wg.ifname] = "kernel"
    else:
        binary = wireguard_go()
        if binary is None:
            raise _fail(cfg, wg.line, wg.path, "this kernel has no WireGuard and wireguard-go is missing",
                        "make wireguard-go")
        runner.inside("/run/wireguard").mkdir(parents=True, exist_ok=True)
        pid = runner.spawn([binary, "-f", wg.ifname], f"/run/wireguard-go.{wg.ifname}.log",
                           {"LOG_LEVEL": "error"})
        out.pids[f"wireguard-go {wg.ifname}"] = pid
        sock = runner.inside(f"/run/wireguard/{wg.ifname}.sock")
        deadline = time.monotonic() + WAIT
        while not sock.exists():
            if time.monotonic() > deadline:
                log = runner.inside(f"/run/wireguard-go.{wg.ifname}.log")
                said = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
                raise _fail(cfg, wg.line, wg.path, f"wireguard-go did not create {wg.ifname} within {WAIT:g}s: "
                                                   f"{' / '.join(said) or 'no output'}")
            time.sleep(0.01)
        out.wireguard[wg.ifname] = "wireguard-go"
    result = runner.run(["wg", "setconf", wg.ifname, "/dev/stdin"], stdin=_wg_conf(wg, key))
    if result.returncode != 0:
        # wg's own words name the field; they never echo a key
        raise _fail(cfg, wg.line, wg.path, f"wg setconf {wg.ifname} failed: {result.stderr.strip()[-200:]}")


# --- IPsec ----------------------------------------------------------------------------------


def _strongswan_conf(cfg: DeviceConfig, backend: str) -> str:
    assert cfg.ipsec is not None
    plugins = ("kernel-netlink " if backend == "kernel" else "kernel-libipsec kernel-netlink ") + CHARON_PLUGINS
    lines = ["# written by clabgen for this gateway's charon (its /run is the gateway's own directory)",
             "charon {", f"    load = {plugins}", "    install_routes = yes", "    install_virtual_ip = no"]
    if cfg.ipsec.interfaces:
        lines.append(f"    interfaces_use = {','.join(cfg.ipsec.interfaces)}")
    lines += ["    filelog {", "        log {", "            path = /run/charon.log", "            default = 1",
              "            time_format = %H:%M:%S",
              "            flush_line = yes", "        }", "    }", "    plugins {"]
    if backend != "kernel":
        lines += ["        kernel-libipsec {", "            allow_peer_ts = yes", "        }",
                  "        kernel-netlink {", f"            fwmark = !{FWMARK}", "        }",
                  "        socket-default {", f"            fwmark = {FWMARK}", "        }"]
    lines += ["    }", "}", "swanctl {", f"    load = {SWANCTL_PLUGINS}", "}"]
    return "\n".join(lines) + "\n"


def _conn_name(peer: IpsecPeer) -> str:
    """vyos-1x: the peer's name with '@' dropped and dots and colons as dashes."""
    return peer.name.replace("@", "").replace(".", "-").replace(":", "-")


def _ts(prefixes: tuple[str, ...], address: str, protocol: str | None) -> str:
    suffix = f"[{protocol}/]" if protocol else ""
    return ",".join(f"{p}{suffix}" for p in (prefixes or (f"{address}/32",)))


def swanctl_conf(cfg: DeviceConfig, backend: str) -> str:
    """The connections and secrets of the config's site-to-site peers (0600: it holds the PSKs)."""
    assert cfg.ipsec is not None
    ipsec = cfg.ipsec
    legacy = cfg.release == "1.2"
    conns, secrets = [], []
    for p in ipsec.peers:
        ike = ipsec.ike[p.ike_group]
        name = _conn_name(p)
        c = [f"    {name} {{", f"        proposals = {','.join(x.text() for x in ike.proposals) or 'default'}",
             f"        version = {ike.version}", f"        local_addrs = {p.local}", f"        remote_addrs = {p.remote}"]
        if ike.dpd:
            c += [f"        dpd_timeout = {ike.dpd[2]}", f"        dpd_delay = {ike.dpd[1]}"]
        c += [f"        rekey_time = {ike.lifetime}s", "        mobike = yes",
              f"        keyingtries = {0 if p.initiate else 1}"]
        if p.force_udp or backend != "kernel":
            c.append("        encap = yes")
        c += ["        local {", f"            id = \"{p.local_id}\"", "            auth = psk", "        }",
              "        remote {", f"            id = \"{p.remote_id}\"", "            auth = psk", "        }",
              "        children {"]
        for t in p.tunnels:
            esp = ipsec.esp[t.esp_group or p.esp_group or ""] if (t.esp_group or p.esp_group) in ipsec.esp else None
            proposals = ",".join(x.text(esp.pfs) for x in esp.proposals) if esp else "default"
            start_action = "start" if p.initiate else ("none" if legacy else "trap")
            c += [f"            {name}-tunnel-{t.number} {{", f"                esp_proposals = {proposals}",
                  f"                life_time = {esp.lifetime if esp else 3600}s",
                  f"                local_ts = {_ts(t.local_ts, p.local, t.protocol)}",
                  f"                remote_ts = {_ts(t.remote_ts, p.remote, t.protocol)}",
                  "                mode = tunnel", f"                start_action = {start_action}"]
            if ike.dpd:
                c.append(f"                dpd_action = {ike.dpd[0] if ike.dpd[0] != 'hold' else 'trap'}")
            c += ["                close_action = none", "            }"]
        c += ["        }", "    }"]
        conns += c
        secrets += [f"    ike-{name} {{", f"        id-local = {p.local_id}", f"        id-remote = {p.remote_id}",
                    f"        secret = \"{p.psk}\"", "    }"]
    return "\n".join(["connections {", *conns, "}", "secrets {", *secrets, "}"]) + "\n"


# Userspace ESP under bulk TCP: charon's UDP 4500 socket overflows the namespace's default receive
# buffer (212992 bytes; `net.core.rmem_default` is not writable inside a namespace and charon has
# no option for it), and ipsec0's transmit queue (500 packets) overflows while charon encrypts:
# both drops were 5-10 % TCP retransmits (bench/bench_crypto.py). Measured: 0 with these.
ESP_RCVBUF = 4 << 20
IPSEC0_TXQUEUELEN = "10000"
SO_RCVBUFFORCE = 33
SYS_PIDFD_GETFD = 438          # x86_64 and the generic syscall table alike


def _widen_userspace_esp(runner: Runner, pid: int) -> None:
    """Best effort: a longer ipsec0 queue and larger receive buffers on charon's UDP sockets."""
    runner.run(["ip", "link", "set", "ipsec0", "txqueuelen", IPSEC0_TXQUEUELEN])
    widen_socket_buffers(pid)


def widen_socket_buffers(pid: int) -> None:
    """SO_RCVBUFFORCE on each of the process's UDP sockets, through a copy taken with pidfd_getfd
    (the same socket); best effort (the Linux part-2 scripts call it too)."""
    import ctypes
    import socket
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if not os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                    continue
            except OSError:
                continue
            mine = libc.syscall(SYS_PIDFD_GETFD, pidfd, int(fd), 0)
            if mine < 0:
                return          # not allowed here (e.g. no ptrace rights): keep the defaults
            with socket.socket(fileno=mine) as sock:        # closes only this process's copy
                if sock.type == socket.SOCK_DGRAM and sock.family in (socket.AF_INET, socket.AF_INET6):
                    sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, ESP_RCVBUF)
    except OSError:
        pass
    finally:
        os.close(pidfd)


def _ipsec(runner: Runner, cfg: DeviceConfig, backend: str, out: CryptoApplied) -> None:
    assert cfg.ipsec is not None
    for path, text in ((STRONGSWAN_CONF, _strongswan_conf(cfg, backend)), (SWANCTL_CONF, swanctl_conf(cfg, backend))):
        target = runner.inside(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
    out.pids["charon"] = runner.spawn([str(CHARON_BIN)], "/run/charon.out", {"STRONGSWAN_CONF": STRONGSWAN_CONF})
    swanctl = ["env", f"STRONGSWAN_CONF={STRONGSWAN_CONF}", "swanctl"]
    line, path = cfg.ipsec.line, "vpn ipsec"
    deadline = time.monotonic() + WAIT
    while runner.run([*swanctl, "--stats"]).returncode != 0:     # the vici socket answers
        if time.monotonic() > deadline:
            raise _fail(cfg, line, path, f"charon did not answer within {WAIT:g}s (log: /run/charon.log of this gateway)")
        time.sleep(0.02)
    # Right after the socket appears a load can take nothing: load until every connection is there.
    want = len(cfg.ipsec.peers)
    while True:
        loaded = runner.run([*swanctl, "--load-all", "--file", SWANCTL_CONF])
        conns = runner.run([*swanctl, "--list-conns", "--raw"])
        if loaded.returncode == 0 and conns.stdout.count("local_addrs") >= want:
            break
        if time.monotonic() > deadline:
            said = [ln.strip() for ln in (loaded.stdout + loaded.stderr).splitlines()
                    if "fail" in ln or "error" in ln.lower() or "invalid" in ln]
            raise _fail(cfg, line, path, f"swanctl --load-all did not load the connections: {' / '.join(said[-4:])}")
        time.sleep(0.05)
    out.ipsec = "kernel" if backend == "kernel" else "kernel-libipsec"
    if backend != "kernel":
        _widen_userspace_esp(runner, out.pids["charon"])
    # Userspace ESP raises no acquires: a helper stands in for them while the initiators' children come up.
    children = [f"{_conn_name(p)}/{_conn_name(p)}-tunnel-{t.number}" for p in cfg.ipsec.peers if p.initiate
                for t in p.tunnels]
    if backend != "kernel" and children:
        out.pids["ipsec-kick"] = runner.spawn([sys.executable, "-m", "clabgen.emu.ipsec_kick", f"{KICK_FOR:g}",
                                               *children], "/run/ipsec-kick.log", {"STRONGSWAN_CONF": STRONGSWAN_CONF})
