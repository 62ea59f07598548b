"""API domains, one package each: controllers, schemas, services."""
