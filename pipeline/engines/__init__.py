"""Engines drive prepared batches through dispatch into a writer. Today: the asyncio worker pool."""
