"""sluice serve: the engine behind an HTTP API (jobs, sync answers, webhooks)."""
