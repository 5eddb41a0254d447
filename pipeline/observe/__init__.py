"""Observation: consumers of the run's event stream (core/events.py). The counters behind
the summary and the exit code, the progress display's feed; traces and metrics belong here."""
