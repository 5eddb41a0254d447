"""Workflows: several steps per item, their dependencies and conditions (pure)."""
