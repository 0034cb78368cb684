"""A throwaway Redis server on 127.0.0.1 for the tests, like ``tests/postgres.py``'s cluster.

The binary is ``CONDUIT_REDIS_SERVER``, else ``redis-server`` on ``PATH``, else Debian's
``/usr/bin/redis-server`` (``apt-get install redis-server``; ``scripts/test.sh`` installs it).
Nothing is persisted (``--save ''``, ``--appendonly no``). When no server is installed the tests
fail with the reason; they never skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import redis

from tests.waiting import until_sync

DEBIAN_SERVER = Path("/usr/bin/redis-server")
START_SECONDS = 10.0


class RedisUnavailable(RuntimeError):
    """``redis-server`` is missing or did not start."""


def server_binary() -> Path:
    """The ``redis-server`` to run; raises RedisUnavailable."""
    candidates = [os.environ.get("CONDUIT_REDIS_SERVER"), shutil.which("redis-server"), str(DEBIAN_SERVER)]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            return Path(candidate)
    raise RedisUnavailable(
        "redis-server not found (CONDUIT_REDIS_SERVER, PATH, /usr/bin); install it with "
        "`apt-get install redis-server` or set CONDUIT_REDIS_SERVER"
    )


def free_port() -> int:
    """A TCP port nothing listens on at 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1 and a free port, its files in a temporary directory.

    ``start`` may be called again after ``stop``: the server comes back on the same port, empty.
    """

    def __init__(self) -> None:
        self.binary = server_binary()
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="conduit-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        """The ``redis://`` URL of database ``db``."""
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        """Start the server and wait (at most ``START_SECONDS``) until it answers ``PING``."""
        log = open(self.dir / "server.log", "ab")  # noqa: SIM115 - the child keeps writing to it
        with log:
            self.process = subprocess.Popen(
                [
                    str(self.binary),
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--dir",
                    str(self.dir),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--daemonize",
                    "no",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        process = self.process
        with redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1) as client:

            def answers() -> bool:
                if process.poll() is not None:
                    output = (self.dir / "server.log").read_text(errors="replace").strip()
                    raise RedisUnavailable(f"redis-server exited with {process.returncode}: {output[-2000:]}")
                try:
                    return bool(client.ping())
                except redis.ConnectionError:
                    return False

            try:
                until_sync(answers, f"redis-server to answer on port {self.port}", within=START_SECONDS)
            except AssertionError as error:
                self.stop()
                raise RedisUnavailable(str(error)) from error

    def flush(self) -> None:
        """Empty every database of the server."""
        with redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5) as client:
            client.flushall()

    def stop(self) -> None:
        """Stop the server by its PID (SIGTERM, then SIGKILL after 5 s) and wait for it."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def destroy(self) -> None:
        """Stop the server and delete its files."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
