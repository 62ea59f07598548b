"""Jobs: schedules, run-now, run history and status."""
