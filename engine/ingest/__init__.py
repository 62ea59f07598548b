"""Ingestion: fetch through the cache, check quality, load idempotently, record the run."""
