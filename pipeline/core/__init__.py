"""The vocabulary every stage shares: configuration, items and outcomes, the error tree and
its exit codes, the clock, counters, JSON encoding, redaction of secrets, file formats."""
