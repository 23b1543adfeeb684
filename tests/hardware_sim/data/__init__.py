"""The synthetic holders' card images (``*.json``, written by ``holders.py``).

A package of its own, listed in pyproject.toml with its package data, so that
setuptools installs the files without warning that a data directory is missing
from the ``packages`` configuration.
"""
