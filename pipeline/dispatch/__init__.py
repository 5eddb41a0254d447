"""Stage 3, one request's journey: the Transport seam (HTTP), the one retry loop, and what the
first answers say about the settings."""
