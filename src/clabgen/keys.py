"""Keys and pre-shared secrets of encrypted tunnels: lab-only ones derived, a user's read from files.

A checked-in lab must render byte for byte the same every time, so its keys cannot be random:
a lab key is derived from the lab's name and the node or tunnel it belongs to (SHA-256 with a
fixed label). Anyone can derive it again; that is the point, and why every rendered copy is
marked "lab-only". A user who wants real keys points the intent at files instead; those are read
here and their contents never appear in an exception, a log line or a file clabgen writes
(unless the intent says `write_secrets: true`). X25519 is implemented here (RFC 7748) so that
WireGuard public keys need no compiled dependency: it runs a few times per render.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

LABEL = b"clabgen lab-only key, not a secret\0"
_P = 2**255 - 19
_A24 = 121665
_PSK_TEXT = re.compile(r"[!#-~]{8,128}")        # printable ASCII, no blank, no double quote


class SecretFileError(ValueError):
    """A key or PSK file that cannot be used; the message names the file, never its contents."""


def _clamp(k: bytes) -> int:
    b = bytearray(k)
    b[0] &= 248
    b[31] &= 127
    b[31] |= 64
    return int.from_bytes(b, "little")


def x25519(scalar: bytes, u: bytes) -> bytes:
    """RFC 7748 X25519 (Montgomery ladder); 32-byte little-endian in and out."""
    k = _clamp(scalar)
    x1 = int.from_bytes(u, "little") & ((1 << 255) - 1)
    x2, z2, x3, z3, swap = 1, 0, x1, 1, 0
    for t in reversed(range(255)):
        bit = (k >> t) & 1
        swap ^= bit
        if swap:
            x2, x3, z2, z3 = x3, x2, z3, z2
        swap = bit
        a, b = (x2 + z2) % _P, (x2 - z2) % _P
        aa, bb = a * a % _P, b * b % _P
        e = (aa - bb) % _P
        c, d = (x3 + z3) % _P, (x3 - z3) % _P
        da, cb = d * a % _P, c * b % _P
        x3, z3 = (da + cb) ** 2 % _P, x1 * (da - cb) ** 2 % _P
        x2, z2 = aa * bb % _P, e * (aa + _A24 * e) % _P
    if swap:
        x2, z2 = x3, z3
    return (x2 * pow(z2, _P - 2, _P) % _P).to_bytes(32, "little")


def public_key(private: bytes) -> bytes:
    """The WireGuard (X25519) public key of a private key."""
    return x25519(private, (9).to_bytes(32, "little"))


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def lab_private_key(lab: str, node: str) -> bytes:
    """A gateway's lab-only WireGuard private key (clamped, as `wg genkey` prints them)."""
    raw = bytearray(hashlib.sha256(LABEL + f"wireguard\0{lab}\0{node}".encode()).digest())
    raw[0] &= 248
    raw[31] = (raw[31] & 127) | 64
    return bytes(raw)


def lab_psk(lab: str, tunnel: str) -> str:
    """A tunnel's lab-only IPsec pre-shared secret: printable, no blanks (VyOS 1.2 writes it bare)."""
    return "lab-only-" + hashlib.sha256(LABEL + f"ipsec\0{lab}\0{tunnel}".encode()).hexdigest()[:32]


def _read(path: Path, what: str) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SecretFileError(f"cannot read the {what} file {path}: {exc.strerror or type(exc).__name__}") from None
    try:
        return data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise SecretFileError(f"the {what} file {path} is not ASCII text") from None


def read_wireguard_key(path: Path, what: str = "WireGuard private key") -> bytes:
    """A base64 32-byte key as `wg genkey` / `wg genpsk` write it."""
    text = _read(path, what)
    try:
        key = base64.b64decode(text, validate=True)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise SecretFileError(f"the {what} file {path} does not hold one base64 32-byte key "
                              "(make one with `wg genkey` or `wg genpsk`)")
    return key


def read_psk(path: Path) -> str:
    """An IPsec pre-shared secret: 8-128 printable ASCII characters without blanks or quotes."""
    text = _read(path, "IPsec PSK")
    if not _PSK_TEXT.fullmatch(text):
        raise SecretFileError(f"the IPsec PSK file {path} must hold one line of 8-128 printable characters "
                              "without blanks or double quotes")
    return text
