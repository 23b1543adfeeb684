"""The passenger display's static page, style and script (package data: no network)."""
