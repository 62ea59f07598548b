"""Stop the embedded servers a process started once that process is gone.

A process that starts embedded servers stops them at exit (`atexit`). A marimo kernel
never runs its exit handlers (it ends with `os._exit` when the notebook closes or an
export finishes), so a notebook that started the servers would leave them running until
the next RegimeLab process adopted them. `spawn_reaper` starts a small watcher in its own
session that waits for the process to end and then stops the servers still recorded as
owned by it; servers another process owns by then (it adopted them) are left alone.

Run as `python -m engine.io.reaper PID STATE_DIR`.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

from engine.io.embedded import EmbeddedPostgres, EmbeddedValkey, state_lock

__all__ = ["reap", "spawn_reaper", "wait_for_exit"]

log = logging.getLogger(__name__)


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _owner(root: Path) -> int | None:
    try:
        return int(json.loads((root / "owner.json").read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def wait_for_exit(pid: int, *, poll_seconds: float = 1.0) -> None:
    """Return once process `pid` has ended."""
    while _alive(pid):
        time.sleep(poll_seconds)


def reap(pid: int, state_dir: Path) -> list[str]:
    """Stop the servers under `state_dir` still owned by the ended process `pid`; the
    names of those stopped."""
    stopped: list[str] = []
    if not state_dir.is_dir():  # removed meanwhile: nothing can run from it
        return stopped
    with state_lock(state_dir):
        servers = (
            ("valkey", EmbeddedValkey(state_dir / "valkey")),
            ("postgres", EmbeddedPostgres(state_dir / "postgres")),
        )
        for name, server in servers:
            if _owner(server.root) != pid or server.running_port() is None:
                continue
            server.start_or_attach()  # its owner is gone: this adopts it
            server.stop()
            stopped.append(name)
    return stopped


def spawn_reaper(pid: int, state_dir: Path) -> subprocess.Popen[bytes]:
    """Start the watcher for process `pid` (detached: signals to `pid`'s process group
    do not reach it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "engine.io.reaper", str(pid), str(state_dir)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )


def main(argv: list[str]) -> int:
    """Entry point: wait for PID to end, then stop what it left running."""
    if len(argv) != 2 or not argv[0].isdigit():
        print("usage: python -m engine.io.reaper PID STATE_DIR", file=sys.stderr)
        return 2
    pid, state_dir = int(argv[0]), Path(argv[1])
    if pid == os.getpid():
        return 2
    wait_for_exit(pid)
    for name in reap(pid, state_dir):
        log.info("stopped embedded %s left running by process %s", name, pid)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
