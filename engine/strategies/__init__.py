"""Strategies: validated parameters and a function from them to target weights."""
