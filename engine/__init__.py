"""RegimeLab engine: computation and I/O, free of any web framework."""
