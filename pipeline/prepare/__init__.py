"""Stage 2, items -> requests: batches, prompt templates, request bodies, and the cache
look-up done as each batch is read (in the reader thread while requests are in flight)."""
