"""Vectorized features: Polars expressions over the canonical bar frame."""
