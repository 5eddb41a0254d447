"""After a run: reports made from its finished summary, for operators and their tools.
The Prometheus textfile, the per-job history and the alerts that compare a run with it."""
