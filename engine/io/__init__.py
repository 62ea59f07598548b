"""The only place that talks to Postgres, Redis, files and HTTP."""
