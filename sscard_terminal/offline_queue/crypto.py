"""Keys of the journal: where the master key comes from and what is derived from it.

One master key per terminal, 32 random bytes, lives either in a file readable only by
the daemon's user (mode 0600, owned by it) or in a systemd credential
(``LoadCredential=``/``SetCredentialEncrypted=``, read from ``$CREDENTIALS_DIRECTORY``).
HKDF-SHA256 with the terminal id as salt separates two keys from it, so that knowing
one tells nothing about the other: the AES-256-GCM key that encrypts personal fields,
and the HMAC-SHA256 key of the hash chain. The key never touches the journal's disk.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import JournalKeyError

if TYPE_CHECKING:
    from hashlib import _Hash

__all__ = [
    "LENGTH_PREFIX", "MASTER_KEY_BYTES", "NONCE_BYTES", "JournalKeys", "load_credential",
    "load_key_file",
]

MASTER_KEY_BYTES = 32
NONCE_BYTES = 12
_ENCRYPTION_INFO = b"sscard-journal/personal-fields/aes-256-gcm/v1"
_CHAIN_INFO = b"sscard-journal/hash-chain/hmac-sha256/v1"
_SHA256_BLOCK = 64
LENGTH_PREFIX = struct.Struct(">I").pack
"""The 4-byte big-endian length before each part a MAC covers (:meth:`JournalKeys.mac`)."""


def _derive(master: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(master)


@dataclass(frozen=True)
class JournalKeys:
    """The two working keys of one terminal's journal (never printed: ``repr`` hides them)."""

    encryption_key: bytes = field(repr=False)
    chain_key: bytes = field(repr=False)

    @classmethod
    def derive(cls, master: bytes, terminal_id: str) -> JournalKeys:
        """Separate the encryption key and the chain key from the terminal's master key."""
        if len(master) != MASTER_KEY_BYTES:
            raise JournalKeyError(
                f"journal master key must be {MASTER_KEY_BYTES} bytes, got {len(master)}")
        salt = terminal_id.encode("utf-8")
        return cls(_derive(master, salt, _ENCRYPTION_INFO), _derive(master, salt, _CHAIN_INFO))

    def mac(self, *parts: bytes) -> bytes:
        """HMAC-SHA256 over length-prefixed parts (so no two part lists collide)."""
        return self.mac_framed(b"".join([LENGTH_PREFIX(len(part)) + part for part in parts]))

    def mac_framed(self, message: bytes) -> bytes:
        """HMAC-SHA256 of a message already framed as :meth:`mac` frames its parts.

        For the one hot caller (the chain link of every enqueue), which frames its parts
        inline; tests pin both paths to the same result, and to :func:`hmac.new`.
        """
        inner_pad, outer_pad = self._chain_pads
        inner = inner_pad.copy()
        inner.update(message)
        outer = outer_pad.copy()
        outer.update(inner.digest())
        return outer.digest()

    @cached_property
    def _chain_pads(self) -> tuple[_Hash, _Hash]:
        # HMAC (RFC 2104) from its two keyed SHA-256 states, each hashed once and copied
        # per message. ``hmac.HMAC.copy()`` does the same through several Python-level
        # calls, and ``hmac.digest`` keys both states again on every call; right after a
        # commit's fsync has let the CPU caches go cold, either costs several times the
        # hashing itself (see bench/queue.py). The key is 32 bytes, shorter than the block.
        block = self.chain_key.ljust(_SHA256_BLOCK, b"\0")
        return (hashlib.sha256(bytes(b ^ 0x36 for b in block)),
                hashlib.sha256(bytes(b ^ 0x5C for b in block)))

    @cached_property
    def _aead(self) -> AESGCM:
        # Built once: the key schedule is most of the cost of a small encryption.
        return AESGCM(self.encryption_key)

    def key_check(self) -> bytes:
        """A value stored in the journal that tells a wrong key from a tampered record."""
        return self.mac(b"key-check") + hmac.new(
            self.encryption_key, b"key-check", hashlib.sha256).digest()

    def encrypt(self, plaintext: bytes, associated: bytes, nonce: bytes | None = None) -> bytes:
        """AES-GCM with a fresh random nonce; ``associated`` binds it to its record.

        ``nonce``: 12 random bytes the caller drew itself (never reused: a GCM nonce used
        twice under one key gives the key away); by default drawn here.
        """
        if nonce is None:
            nonce = os.urandom(NONCE_BYTES)
        elif len(nonce) != NONCE_BYTES:
            raise ValueError(f"an AES-GCM nonce here is {NONCE_BYTES} bytes")
        return nonce + self._aead.encrypt(nonce, plaintext, associated)

    @property
    def raw_encrypt(self) -> Callable[[bytes, bytes, bytes | None], bytes]:
        """AES-GCM ``encrypt(nonce, plaintext, associated)`` itself, for the one hot caller
        (every durable enqueue), which draws its nonce and prepends it as :meth:`encrypt`
        does; a test pins the two to the same output."""
        return self._aead.encrypt

    def decrypt(self, sealed: bytes, associated: bytes) -> bytes:
        """Open what :meth:`encrypt` sealed, or raise :class:`JournalKeyError`."""
        nonce, body = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
        try:
            return self._aead.decrypt(nonce, body, associated)
        except InvalidTag as exc:
            raise JournalKeyError(
                "personal fields do not decrypt with this key (wrong key or edited record)"
            ) from exc


def _parse_key(raw: bytes, where: str) -> bytes:
    """Accept 32 raw bytes or 64 hex digits (with optional trailing newline)."""
    text = raw.strip()
    if len(raw) == MASTER_KEY_BYTES:
        return raw
    try:
        key = bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        key = b""
    if len(key) != MASTER_KEY_BYTES:
        raise JournalKeyError(
            f"{where}: not a journal key (want {MASTER_KEY_BYTES} raw bytes or "
            f"{2 * MASTER_KEY_BYTES} hex digits); create one with "
            f"'head -c32 /dev/urandom > FILE && chmod 600 FILE'")
    return key


def load_key_file(path: Path) -> bytes:
    """Read the master key from a file only the daemon's user may read.

    A file that group or others can read or write, or that another user owns, is refused:
    anyone who could read it could decrypt personal data or forge the chain.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise JournalKeyError(f"cannot open journal key file {path}: {exc.strerror}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise JournalKeyError(f"journal key file {path} is not a regular file")
        if info.st_mode & 0o077:
            raise JournalKeyError(
                f"journal key file {path} has mode {stat.S_IMODE(info.st_mode):04o}; "
                f"run 'chmod 600 {path}'")
        if info.st_uid != os.geteuid():
            raise JournalKeyError(
                f"journal key file {path} is owned by uid {info.st_uid}, not by this user "
                f"(uid {os.geteuid()}); chown it to the daemon's user")
        raw = os.read(fd, 4096)
    finally:
        os.close(fd)
    return _parse_key(raw, f"journal key file {path}")


def load_credential(name: str, environ: dict[str, str] | None = None) -> bytes:
    """Read the master key from the systemd credential ``name``.

    systemd places credentials in a private, read-only directory named by
    ``$CREDENTIALS_DIRECTORY``; it already restricts who may read them.
    """
    env = os.environ if environ is None else environ
    directory = env.get("CREDENTIALS_DIRECTORY")
    if not directory:
        raise JournalKeyError(
            f"no systemd credentials ($CREDENTIALS_DIRECTORY unset); add "
            f"'LoadCredential={name}:/path/to/key' to the unit or use a key file")
    path = Path(directory) / name
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise JournalKeyError(f"cannot read systemd credential {path}: {exc.strerror}") from exc
    return _parse_key(raw, f"systemd credential {path}")
