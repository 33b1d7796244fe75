"""A throwaway PostgreSQL server for the tests and ``allocator bench cluster``.

``initdb`` and ``pg_ctl`` come from PATH or from Debian's
``/usr/lib/postgresql/<version>/bin``. They refuse to run as root, so as root the
server runs as the ``postgres`` system user (which Debian's package creates), in
a temporary directory owned by it. It listens on a unix socket in that directory
and on a free local TCP port, and is removed by :meth:`PgServer.stop`.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

__all__ = ["PgServer", "find_binaries"]


def find_binaries() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl`` (None when not installed)."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(candidate, "initdb")):
            return Path(candidate)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """Start a PostgreSQL server in a fresh directory; :meth:`stop` removes it.

    Parameters
    ----------
    fsync
        ``False`` skips the flushes (tests: faster, and safe against everything but
        an OS crash); the benchmark keeps them.
    settings
        Extra ``postgresql.conf`` settings.
    """

    def __init__(self, *, fsync: bool = True, settings: dict[str, str] | None = None) -> None:
        bindir = find_binaries()
        if bindir is None:
            raise RuntimeError(
                "PostgreSQL server binaries (initdb, pg_ctl) not found; install Debian's "
                "postgresql-15 package"
            )
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="allocator-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
            "--locale=C",
        )
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
            "max_connections": "400",
            "shared_buffers": "256MB",
            "fsync": "on" if fsync else "off",
            "full_page_writes": "on" if fsync else "off",
            "synchronous_commit": "on",
            "max_wal_size": "2GB",
            "log_min_messages": "fatal",
            "logging_collector": "off",
        }
        conf.update(settings or {})
        with open(self.data / "postgresql.conf", "a") as fh:
            for key, value in conf.items():
                fh.write(f"{key} = {value}\n")
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bindir / tool), *args]
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd="/", timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"{tool} failed: {proc.stdout}\n{proc.stderr}")

    # ------------------------------------------------------------ lifetime
    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``mode``: ``fast`` or ``immediate``, a crash)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def destroy(self) -> None:
        """Stop the server and remove its directory."""
        try:
            self.stop("immediate")
        except RuntimeError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)

    # ------------------------------------------------------------ addresses
    def url(self, schema: str = "allocator", *, tcp: bool = False) -> str:
        """A connection URL for the ``postgres`` database and ``schema``."""
        if tcp:
            return f"postgresql://postgres@127.0.0.1:{self.port}/postgres?schema={schema}"
        return f"postgresql://postgres@/postgres?host={self.root}&port={self.port}&schema={schema}"

    def conninfo(self) -> str:
        """A libpq URL without the schema (for plain connections)."""
        return f"postgresql://postgres@/postgres?host={self.root}&port={self.port}"
