"""Request signing of the terminal protocol, used by BOTH sides.

A terminal proves who it is with a shared secret: it signs every request with
HMAC-SHA256 over a canonical string (method, path with query, timestamp, nonce, SHA-256
of the body). The central recomputes it with the same function, refuses timestamps
outside its skew window (a terminal with a wrong clock learns so, with the server time
in the answer) and nonces it has already seen inside that window (a replay). Keeping the
signer and the verifier in one module means the two cannot drift apart.

Reasons for refusal are stable strings a terminal can log and a technician can act on:
``missing_header``, ``unknown_terminal``, ``bad_signature``, ``clock_skew``,
``replayed_nonce``, ``bad_timestamp``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from email.message import Message

from ..errors import CentralRefusedError

__all__ = [
    "HEADER_NONCE",
    "HEADER_SERVER_TIME",
    "HEADER_SIGNATURE",
    "HEADER_TERMINAL",
    "HEADER_TIMESTAMP",
    "MAX_CLOCK_SKEW_S",
    "NonceCache",
    "body_hash",
    "canonical_string",
    "sign_request",
    "verify_request",
]

SCHEME = "SSCARD-HMAC-SHA256"
HEADER_TERMINAL = "X-Sscard-Terminal"
HEADER_TIMESTAMP = "X-Sscard-Timestamp"
HEADER_NONCE = "X-Sscard-Nonce"
HEADER_SIGNATURE = "X-Sscard-Signature"
HEADER_SERVER_TIME = "X-Sscard-Server-Time"
"""Sent on EVERY response (refusals too): Unix time in seconds with milliseconds."""

MAX_CLOCK_SKEW_S = 300.0
"""A request whose timestamp is further than this from the central's clock is refused."""


def body_hash(body: bytes) -> str:
    """Lowercase hex SHA-256 of the exact body bytes (the empty body for a GET)."""
    return hashlib.sha256(body).hexdigest()


def canonical_string(
    terminal_id: str, method: str, target: str, *, timestamp: str, nonce: str, body: bytes
) -> bytes:
    """What is signed: one field per line, so no field can run into the next.

    ``target`` is the path with its query string exactly as sent (``/v1/denylist?since=4``).
    """
    lines = (SCHEME, terminal_id, method.upper(), target, timestamp, nonce, body_hash(body))
    return "\n".join(lines).encode("utf-8")


def _mac(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign_request(
    terminal_id: str,
    secret: str,
    method: str,
    target: str,
    *,
    body: bytes,
    now: float | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The four authentication headers for one request."""
    timestamp = str(int(time.time() if now is None else now))
    nonce = nonce or secrets.token_hex(16)
    signature = _mac(secret, canonical_string(
        terminal_id, method, target, timestamp=timestamp, nonce=nonce, body=body))
    return {
        HEADER_TERMINAL: terminal_id,
        HEADER_TIMESTAMP: timestamp,
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: signature,
    }


class NonceCache:
    """Nonces seen inside the skew window; thread-safe, pruned as it goes.

    A nonce only needs remembering for as long as its timestamp would be accepted:
    after that the skew check refuses the replay anyway.
    """

    def __init__(self, window_s: float = MAX_CLOCK_SKEW_S, max_entries: int = 1_000_000) -> None:
        self._window = window_s
        self._max = max_entries
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._next_prune = 0.0

    def first_use(self, terminal_id: str, nonce: str, now: float) -> bool:
        """Record the nonce; False if it was already used by this terminal."""
        key = (terminal_id, nonce)
        with self._lock:
            if now >= self._next_prune or len(self._seen) >= self._max:
                horizon = now - 2 * self._window
                self._seen = {k: t for k, t in self._seen.items() if t > horizon}
                self._next_prune = now + 10.0
            if key in self._seen:
                return False
            self._seen[key] = now
            return True


def _refuse(reason: str, message: str) -> CentralRefusedError:
    return CentralRefusedError(f"request refused: {message}", reason=reason)


def verify_request(
    method: str,
    target: str,
    headers: Mapping[str, str] | Message[str, str],
    body: bytes,
    *,
    secret_for: Callable[[str], str | None],
    nonces: NonceCache,
    now: float | None = None,
    max_skew_s: float = MAX_CLOCK_SKEW_S,
) -> str:
    """Check one request; return the authenticated terminal id.

    ``headers`` must be case-insensitive (``http.client.HTTPMessage`` and httpx's are).
    Raises :class:`CentralRefusedError` whose ``reason`` is one of the module's codes.
    The order matters: the signature is checked before the nonce is recorded, so a forger
    cannot burn a genuine terminal's nonces.
    """
    now = time.time() if now is None else now
    terminal_id = headers.get(HEADER_TERMINAL)
    timestamp = headers.get(HEADER_TIMESTAMP)
    nonce = headers.get(HEADER_NONCE)
    signature = headers.get(HEADER_SIGNATURE)
    if not (terminal_id and timestamp and nonce and signature):
        raise _refuse("missing_header", "authentication headers missing")
    secret = secret_for(terminal_id)
    if secret is None:
        raise _refuse("unknown_terminal", "terminal not registered")
    try:
        stamp = int(timestamp)
    except ValueError:
        raise _refuse("bad_timestamp", "timestamp is not an integer") from None
    expected = _mac(secret, canonical_string(
        terminal_id, method, target, timestamp=timestamp, nonce=nonce, body=body))
    # Bytes, not str: compare_digest raises TypeError on non-ASCII text, and header
    # bytes arrive decoded as Latin-1, so a hostile byte must compare unequal instead.
    offered = signature.lower().encode("utf-8", "surrogatepass")
    if not hmac.compare_digest(expected.encode("ascii"), offered):
        raise _refuse("bad_signature", "signature does not match (wrong secret or altered request)")
    skew = stamp - now
    if abs(skew) > max_skew_s:
        raise _refuse(
            "clock_skew", f"terminal clock off by {skew:+.0f} s (limit {max_skew_s:.0f} s)"
        )
    if not nonces.first_use(terminal_id, nonce, now):
        raise _refuse("replayed_nonce", "nonce already used (replayed request)")
    return terminal_id
