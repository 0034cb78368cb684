"""A throwaway PostgreSQL cluster on 127.0.0.1 for the tests, from the server's own binaries.

The binaries come from ``CONDUIT_PG_BIN``, else ``pg_config --bindir``, else Debian's
``/usr/lib/postgresql/15/bin``. ``initdb`` refuses to run as root, so as root every server
command runs as the ``postgres`` user through ``runuser``. When no server is installed the
tests fail with the reason; they never skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

DEBIAN_BIN = Path("/usr/lib/postgresql/15/bin")


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries are missing or the cluster did not start."""


def server_bin_dir() -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``; raises PostgresUnavailable."""
    candidates: list[Path] = []
    if os.environ.get("CONDUIT_PG_BIN"):
        candidates.append(Path(os.environ["CONDUIT_PG_BIN"]))
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        if out:
            candidates.append(Path(out))
    candidates.append(DEBIAN_BIN)
    for directory in candidates:
        if (directory / "initdb").exists() and (directory / "pg_ctl").exists():
            return directory
    raise PostgresUnavailable(
        "PostgreSQL server binaries not found (looked in "
        + ", ".join(map(str, candidates))
        + "); install them with `apt-get install postgresql` or set CONDUIT_PG_BIN"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    """One PostgreSQL cluster in a temporary directory, trust auth on 127.0.0.1 only.

    Tuned for tests, not durability (``fsync=off``): the data is thrown away with the cluster.
    """

    def __init__(self) -> None:
        self.bin = server_bin_dir()
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="conduit-pg-"))
        self.data = self.dir / "data"
        self._as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *args: str) -> str:
        result = subprocess.run([*self._as_postgres, *args], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise PostgresUnavailable(f"{' '.join(args)} failed: {result.stderr.strip() or result.stdout.strip()}")
        return result.stdout

    def start(self) -> None:
        """Create the cluster on first call, then start the server and wait until it accepts connections."""
        if not (self.data / "PG_VERSION").exists():
            if self._as_postgres:
                shutil.chown(self.dir, "postgres", "postgres")
            self._run(
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            )
            settings = {
                "listen_addresses": "'127.0.0.1'",
                "port": str(self.port),
                "unix_socket_directories": f"'{self.dir}'",
                "max_connections": "200",
                "fsync": "off",
                "synchronous_commit": "off",
                "full_page_writes": "off",
                "jit": "off",
                "logging_collector": "off",
            }
            with open(self.data / "postgresql.conf", "a") as conf:
                conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "server.log"), "-w", "start")

    def stop(self) -> None:
        """Stop the server now (``-m fast``: running transactions are rolled back, clients cut off)."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        """Stop the server, if running, and delete the cluster's files."""
        subprocess.run(
            [*self._as_postgres, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy-style URL (``postgresql://``) for ``database``."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run one statement with ``psql``; returns its unaligned output."""
        psql = self.bin / "psql"
        if not psql.exists():
            psql = Path(shutil.which("psql") or "psql")
        return self._run(
            str(psql), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database, "-XtAqc", statement
        )
