"""Fail if prisma/migrations does not produce exactly prisma/schema.prisma.

Starts a throwaway embedded PostgreSQL (Prisma needs a server for its shadow database),
runs `npm --prefix prisma run drift`, and exits with its code (0 in sync, 2 drift).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from engine.io.db import with_database
from engine.io.embedded import EmbeddedPostgres
from engine.settings import PROJECT_ROOT


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="regimelab-drift-") as folder:
        server = EmbeddedPostgres(Path(folder) / "postgres", durable=False)
        url = server.start_or_attach()
        try:
            env = {**os.environ, "DATABASE_URL": with_database(url, "postgres")}
            return subprocess.call(
                ["npm", "--prefix", str(PROJECT_ROOT / "prisma"), "run", "--silent", "drift"],
                env=env,
            )
        finally:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
