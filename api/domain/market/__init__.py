"""Market data: instruments, bars (JSON, CSV, Parquet, Arrow) and features."""
