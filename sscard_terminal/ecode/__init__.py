"""Electronic social security card codes: format, decoding and verification."""
