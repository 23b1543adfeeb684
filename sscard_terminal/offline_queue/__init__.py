"""The durable SQLite journal of transactions and its forwarder to the central system."""
