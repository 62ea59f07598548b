"""Jobs of this domain (registered with `api.lib.jobs.job`)."""

from __future__ import annotations
