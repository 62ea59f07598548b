"""RegimeLab HTTP API (Litestar) and command line."""
