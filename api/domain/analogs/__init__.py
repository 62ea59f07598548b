"""Analogs: "periods like today" over market-state embeddings in pgvector."""
