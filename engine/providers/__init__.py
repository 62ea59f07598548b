"""Market data providers: one module per provider (query, extract, transform)."""
