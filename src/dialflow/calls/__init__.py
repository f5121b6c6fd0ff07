"""Call sessions: the status machine, its event log, and the service that runs calls."""
