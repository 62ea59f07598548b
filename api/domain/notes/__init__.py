"""Research notes: write them, and find them by meaning or by words."""
