"""Stage 4, outcomes -> files: row shapes, writers for each format, the final files committed
together, atomic temp-file commits, and what output paths name."""
