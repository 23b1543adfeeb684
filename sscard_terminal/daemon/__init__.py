"""``sscard-terminald``: the unattended terminal daemon (Linux, systemd).

It composes; nothing imports it. Its parts:

- :mod:`.config` reads and strictly validates the TOML configuration;
- :mod:`.notify` speaks the systemd notify protocol (READY, STATUS, WATCHDOG, STOPPING);
- :mod:`.lane` is one reader's or scanner's explicit state machine;
- :mod:`.state_store` keeps the decision engine's memory in SQLite across restarts;
- :mod:`.app` is the asyncio main loop with its worker threads and signal handling.
"""
