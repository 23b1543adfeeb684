"""sscard-terminal: reader SDK and terminal daemon for China's social security card.

The public SDK is what this module exports; everything else is private to the package
and may change.
"""

from . import errors
from .deadline import Deadline

__all__ = ["Deadline", "errors"]
__version__ = "0.1.0"
