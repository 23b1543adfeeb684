"""Hardware adapters: the only code that imports pyscard, pyserial or cv2.

Each adapter implements a seam defined above it (:class:`~sscard_terminal.apdu.transport.
CardTransport` for readers) and translates its library's exceptions into
:mod:`sscard_terminal.errors`. Heavy libraries are imported inside the adapter module
only, so importing this package loads none of them.
"""
