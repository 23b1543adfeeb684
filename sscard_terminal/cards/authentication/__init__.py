"""Read authentication of generation 3 cards: the card proves it is genuine, the terminal
proves it may read.

- :mod:`.context`: the seam, what a module is told of the card (:class:`CardAuthContext`)
  and what it must do (:class:`ReadAuthenticator`);
- :mod:`.psam`: a PSAM in a reader slot, handed in as a transport;
- :mod:`.hsm`: the central system's HSM, in two steps;
- :mod:`.chain`: PSAM first, HSM when the PSAM cannot serve the card
  (:class:`ModuleChain`, :func:`find_authenticator`).

Which reader holds the PSAM is not decided here (card applications never open a reader):
see :mod:`sscard_terminal.terminal.psam_discovery`.
"""

from .chain import ModuleChain, find_authenticator
from .context import CardAuthContext, ReadAuthenticator
from .hsm import HsmTwoStepAuthenticator
from .psam import ForgeryRecord, ForgeryRecorder, PsamAuthenticator

__all__ = [
    "CardAuthContext",
    "ForgeryRecord",
    "ForgeryRecorder",
    "HsmTwoStepAuthenticator",
    "ModuleChain",
    "PsamAuthenticator",
    "ReadAuthenticator",
    "find_authenticator",
]
