"""PLACEHOLDER (task D2 replaces this module): e-code routes of the simulated central.

Contract, wired by :mod:`central_server` into its route table:

``handle_verify(store, body, terminal) -> tuple[int, dict]``
    Serves ``POST /v1/ecodes/verify``. ``store`` is the
    :class:`sscard_hardware_sim.central_store.CentralStore`; ``body`` the parsed JSON
    request (``{"code": "<code text>"}``); ``terminal`` the authenticated terminal's row
    (``{"terminal_id", "profile", "identity_entitled", ...}``). Return the HTTP status and
    the JSON answer: ``{"accepted": bool, "reason": str, "kind": str | None,
    "card": <the card-validation document of the card behind the code> | None}``; build
    ``card`` with ``central_lifecycle.validation_document`` so card and code answer alike.

``issue_code_cli(args) -> int``
    Serves ``sscard central-sim issue-code CARD_NO --db PATH [--png FILE]``; ``args`` is
    the argparse namespace (``card_number``, ``db``, ``png``). Prints the code text.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["handle_verify", "issue_code_cli"]


def handle_verify(store: Any, body: Any, terminal: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return 501, {"error": "not_implemented", "reason": "e-code verification not implemented"}


def issue_code_cli(args: argparse.Namespace) -> int:
    sys.stderr.write("central-sim issue-code: not implemented yet\n")
    return 1
