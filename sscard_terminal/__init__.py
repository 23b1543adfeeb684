"""sscard-terminal: reader SDK and terminal daemon for China's social security card.

The public SDK is what this module exports; everything else is private to the package
and may change.
"""

from . import errors
from .deadline import Deadline
from .sdk import CardInfo, format_basic_info, read_card

__all__ = ["CardInfo", "Deadline", "errors", "format_basic_info", "read_card"]
__version__ = "0.1.0"
