"""Writes to the index: ingest (the one path that adds instances) and deletion."""
