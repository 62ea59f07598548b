"""Run a command with DATABASE_URL pointing at a throwaway embedded PostgreSQL 18 + pgvector.

Prisma's drift check and migration generator need a server for their shadow database:

    uv run python scripts/with_throwaway_postgres.py npm --prefix prisma run drift
    uv run python scripts/with_throwaway_postgres.py npm --prefix prisma run migration:new -- add_x

The server lives in a temporary folder and is removed afterwards; exits with the command's code.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from engine.io.db import with_database
from engine.io.embedded import EmbeddedPostgres


def main(command: list[str]) -> int:
    if not command:
        print(__doc__, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="regimelab-throwaway-") as folder:
        server = EmbeddedPostgres(Path(folder) / "postgres", durable=False)
        url = server.start_or_attach()
        try:
            env = {**os.environ, "DATABASE_URL": with_database(url, "postgres")}
            return subprocess.call(command, env=env)
        finally:
            server.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
