"""Standard datasets: the queries and frames every provider shares."""
