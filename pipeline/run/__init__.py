"""Whole-job entry points the CLI calls: a run from its inputs to its exit code, its wiring,
interrupts, and verifying a finished run."""
