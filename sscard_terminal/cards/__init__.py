"""Card applications: social security (SSSE), bank PAN, PIN, read authentication
(``authentication/``) and the unified interface's formats. They speak to a
:class:`~sscard_terminal.apdu.transport.CardTransport` only, never to a reader driver."""
