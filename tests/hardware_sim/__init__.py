"""Simulated hardware and central system: virtual cards and PSAM behind vpcd, a serial
scanner on a pseudo-terminal, and the central system. Installed as the import package
``sscard_hardware_sim`` so the ``sim:`` reader and ``sscard central-sim`` work from an
installed copy; production code never depends on it except through those two doors.
"""
