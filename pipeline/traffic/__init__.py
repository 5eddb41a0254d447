"""When an attempt may go: token buckets and the limiter, adaptive concurrency, the circuit
breaker, retry policy and budget, adaptive timeouts, token estimates, stall reports. Pure deciders
that are handed the time, and one async edge (control.py) that waits on the clock."""
