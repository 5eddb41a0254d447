"""Stage 2, items -> requests: batches, prompt templates, request bodies, and the cache
look-up done a batch ahead in the reader thread."""
