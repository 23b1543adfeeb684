"""ISO 7816-4 commands, responses, status words and TLV codecs.

Knows nothing of readers or of the daemon: it speaks to a
:class:`~sscard_terminal.apdu.transport.CardTransport` (defined here, implemented by the
adapters in ``drivers/``) and nothing else.
"""

from .command import CommandApdu
from .processors import ApduProcessor
from .response import ResponseApdu
from .status import SW, describe_sw
from .tlv import SimpleTlv, Tlv, encode_ber, encode_simple, find, parse_ber, parse_simple

__all__ = [
    "SW",
    "ApduProcessor",
    "CommandApdu",
    "ResponseApdu",
    "SimpleTlv",
    "Tlv",
    "describe_sw",
    "encode_ber",
    "encode_simple",
    "find",
    "parse_ber",
    "parse_simple",
]
