"""Hardware adapters: the only code that imports pyscard, pyserial or cv2.

Each adapter translates its library's exceptions into :mod:`sscard_terminal.errors`.
Heavy libraries are imported inside the adapter module only, so importing this package
loads none of them.
"""

from .transport import CardInterface, CardTransport

__all__ = ["CardInterface", "CardTransport"]
