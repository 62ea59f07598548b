"""Litestar application factory, plugins and lifespan."""
