"""Whole-job entry points the CLI calls: the composition root that wires and runs one job
(root.py), its result, interrupts, and verifying a finished run."""
