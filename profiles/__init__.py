"""Deployment profiles, as data (one TOML file each).

Installed as the data package ``sscard_profiles`` so that
:func:`sscard_terminal.profiles.load_profile` finds the shipped profiles by name in an
installed copy too. Holds no code.
"""
