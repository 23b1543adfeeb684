"""Finding a security module for generation 3 reads (PSAM first, then the central HSM).

The read path calls :func:`find_authenticator`; issue 6 fills it in. Until then no
module is ever found, and generation 3 cards read as incomplete (free items only).
"""

from __future__ import annotations

from typing import Any

from .read_auth import ReadAuthenticator

__all__ = ["find_authenticator"]


def find_authenticator(
    *,
    psam_reader: str | None = None,
    central: Any = None,
    exclude_reader: str | None = None,
) -> ReadAuthenticator | None:
    """The security module to use, or None when there is none.

    ``psam_reader`` names the PSAM's reader (``--psam``); otherwise PSAMs are looked for
    among the readers other than ``exclude_reader`` (the user card's). ``central`` is a
    :class:`~sscard_terminal.central.client.CentralClient` for the HSM two-step fallback.
    """
    return None
