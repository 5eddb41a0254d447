"""Stage 1, inputs -> items: file formats read as streams, ids, the reader thread."""
