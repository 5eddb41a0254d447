"""The OpenAI-compatible wire format, pure: reading answers, and the headers and error bodies
servers send (rate limits, Retry-After, x-should-retry)."""
