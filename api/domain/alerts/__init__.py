"""Alerts: rules (CRUD, backfill, test sends), evaluation (a job), events and their live feed."""
