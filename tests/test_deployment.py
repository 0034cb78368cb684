"""The PostgreSQL deployment: several real ``conduit serve`` processes on one database.

These tests are about PostgreSQL itself (LISTEN/NOTIFY across processes, workers, shutdown,
the database going away), so they use the PostgreSQL cluster directly rather than running
once per engine.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import websockets
from prometheus_client.multiprocess import MultiProcessCollector
from websockets.exceptions import ConnectionClosed

from db.migrate import upgrade
from tests.conftest import SECRET
from tests.graph.test_subscriptions import Client, post, register, ws_url
from tests.live import free_port
from tests.postgres import Cluster
from tests.waiting import until

pytestmark = pytest.mark.slow  # real server processes, nginx and PostgreSQL clusters

CONDUIT = Path(sys.executable).with_name("conduit")
NGINX_CONF = Path(__file__).parents[1] / "deploy" / "nginx.conf"
COMMENT_ADDED = "subscription($slug: String!) { commentAdded(slug: $slug) { id body } }"
ADD_COMMENT = "mutation($s: String!, $b: String!) { addComment(slug: $s, body: $b) { id body } }"
WAITING_FOR_COMMENT_LOCK = "SELECT count(*) FROM pg_locks WHERE relation = 'comment'::regclass AND NOT granted"


@pytest.fixture
def pg_database(pg_cluster: Cluster, pg_template: str) -> Iterator[str]:
    """A fresh migrated database on the session's cluster, for servers in other processes."""
    name = f"deploy_{uuid.uuid4().hex[:10]}"
    pg_cluster.sql(f"CREATE DATABASE {name} TEMPLATE {pg_template}")
    yield pg_cluster.url(name)
    pg_cluster.sql(f"DROP DATABASE {name} WITH (FORCE)")


@dataclass
class Server:
    """A ``conduit serve`` process and its base URL."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def conduit_serve(
    database_url: str, log_dir: Path, *args: str, name: str = "server", env: dict[str, str] | None = None
) -> Iterator[Server]:
    """Run ``conduit serve`` on a free port until the block ends (SIGTERM, then wait); ``env`` adds variables."""
    port = free_port()
    env = {
        **os.environ,
        **(env or {}),
        "CONDUIT_DATABASE_URL": database_url,
        "CONDUIT_JWT_SECRET": SECRET,
        "CONDUIT_JWT_SECRET_FILE": str(log_dir / "unused-secret"),
        "CONDUIT_ENV": "test",
        "CONDUIT_PASSWORD_HASH_PROFILE": "cheapest",
    }
    log = log_dir / f"{name}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(CONDUIT), "serve", "--host", "127.0.0.1", "--port", str(port), *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise AssertionError(f"{name} exited with {process.returncode}:\n{server.output()}")
            try:
                if httpx.get(f"{server.url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} did not become ready:\n{server.output()}")
            time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def add_comment(url: str, slug: str, body: str, token: str) -> dict[str, Any]:
    data = await post(url, ADD_COMMENT, {"s": slug, "b": body}, token)
    return dict(data["addComment"])


async def create_article(url: str, token: str, title: str = "Live") -> str:
    data = await post(
        url,
        'mutation($t: String!) { createArticle(input: {title: $t, description: "d", body: "b"}) { slug } }',
        {"t": title},
        token,
    )
    return str(data["createArticle"]["slug"])


@asynccontextmanager
async def comment_subscription(url: str, slug: str, token: str) -> AsyncIterator[Client]:
    async with websockets.connect(ws_url(url), subprotocols=[websockets.Subprotocol("graphql-transport-ws")]) as ws:
        client = Client(ws, "graphql-transport-ws")
        assert (await client.init({"Authorization": f"Bearer {token}"}))["type"] == "connection_ack"
        await client.subscribe(COMMENT_ADDED, {"slug": slug})
        yield client


async def until_listening(client: Client, publish: Any) -> None:
    """Publish probes until one arrives: the subscriber's LISTEN is then in place.

    A probe committed before LISTEN is never delivered, so probes are never mistaken for
    the events under test (their bodies start with "probe").
    """
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        await publish()
        try:
            payload = await client.next_payload_within(0.3)
        except TimeoutError:
            continue
        assert payload["data"]["commentAdded"]["body"].startswith("probe"), payload
        return
    raise AssertionError("the subscription never started receiving")


async def receive_bodies(client: Client, count: int, quiet: float = 0.5) -> list[dict[str, Any]]:
    """The next ``count`` non-probe comments, then checks nothing more arrives for ``quiet`` seconds."""
    received: list[dict[str, Any]] = []
    while len(received) < count:
        comment = (await client.next_payload())["data"]["commentAdded"]
        if not comment["body"].startswith("probe"):
            received.append(comment)
    with pytest.raises(TimeoutError):
        extra = await client.next_payload_within(quiet)
        if extra["data"]["commentAdded"]["body"].startswith("probe"):
            raise TimeoutError  # a late probe is not a duplicate
        raise AssertionError(f"an extra event arrived: {extra}")
    return received


async def test_subscriber_on_one_process_sees_comments_added_through_another(pg_database: str, tmp_path: Path) -> None:
    with (
        conduit_serve(pg_database, tmp_path, name="first") as first,
        conduit_serve(pg_database, tmp_path, name="second") as second,
    ):
        author = await register(second.url, "author")
        reader = await register(first.url, "reader")
        slug = await create_article(second.url, author)
        async with comment_subscription(first.url, slug, reader) as client:
            await until_listening(client, lambda: add_comment(second.url, slug, "probe", author))
            # one at a time, so the order of the responses is the commit order
            sequential = [
                await add_comment((second if i % 2 == 0 else first).url, slug, f"in order {i}", author)
                for i in range(6)
            ]
            arrived = await receive_bodies(client, len(sequential))
            assert arrived == sequential

            # racing writers on both processes: each committed comment arrives exactly once
            racing = await asyncio.gather(
                *(add_comment((second if i % 2 else first).url, slug, f"racing {i}", author) for i in range(10))
            )
            arrived = await receive_bodies(client, len(racing))
            assert sorted(c["id"] for c in arrived) == sorted(c["id"] for c in racing)
            assert len({c["id"] for c in arrived}) == len(racing)


def _children(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def counted_by_each_worker(metrics_dir: Path) -> dict[int, float]:
    """``Counted`` operations by worker pid, each read from the counter file only that worker writes."""
    counts: dict[int, float] = {}
    for path in metrics_dir.glob("counter_*.db"):
        pid = int(path.stem.removeprefix("counter_"))
        for metric in MultiProcessCollector.merge([str(path)]):  # type: ignore[no-untyped-call]
            for sample in metric.samples:
                if sample.name == "conduit_graphql_requests_total" and sample.labels["operation_name"] == "Counted":
                    counts[pid] = counts.get(pid, 0) + sample.value
    return counts


async def test_workers_share_the_database_and_the_event_channel(pg_database: str, tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    with conduit_serve(
        pg_database, tmp_path, "--workers", "2", name="workers", env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    ) as server:
        workers = [p for p in _children(server.process.pid) if "spawn_main" in _cmdline(p)]
        assert len(workers) == 2, (workers, server.output())
        author = await register(server.url, "author")
        reader = await register(server.url, "reader")
        slug = await create_article(server.url, author)
        # every connection may land on either worker; all of them must see every comment
        async with (
            comment_subscription(server.url, slug, reader) as one,
            comment_subscription(server.url, slug, reader) as two,
            comment_subscription(server.url, slug, reader) as three,
        ):
            for client in (one, two, three):
                await until_listening(client, lambda: add_comment(server.url, slug, "probe", author))
            sent = [await add_comment(server.url, slug, f"comment {i}", author) for i in range(4)]
            for client in (one, two, three):
                assert await receive_bodies(client, len(sent)) == sent

        # /metrics adds up every worker, whichever answers the scrape: count until both workers counted some
        counted = 0
        while len(counted_by_each_worker(metrics_dir)) < 2:
            assert counted < 200, (
                f"one worker answered {counted} new connections: {counted_by_each_worker(metrics_dir)}"
            )
            async with httpx.AsyncClient() as http:  # a new connection each time: any worker may take it
                await http.post(f"{server.url}/graphql", json={"query": "query Counted { tags }"})
            counted += 1
        # a request is counted as its response ends, which the client may see first
        await until(lambda: sum(counted_by_each_worker(metrics_dir).values()) == counted, f"{counted} counted")
        by_worker = counted_by_each_worker(metrics_dir)
        assert sorted(by_worker) == sorted(workers) and all(0 < n < counted for n in by_worker.values()), by_worker
        for _ in range(4):
            async with httpx.AsyncClient() as http:
                text = (await http.get(f"{server.url}/metrics")).text
            lines = [
                line
                for line in text.splitlines()
                if line.startswith("conduit_graphql_requests_total{") and 'operation_name="Counted"' in line
            ]
            assert len(lines) == 1 and float(lines[0].rsplit(" ", 1)[1]) == counted, (lines, by_worker)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""


async def test_sigterm_finishes_in_flight_requests_and_closes_websockets(pg_database: str, tmp_path: Path) -> None:
    with conduit_serve(pg_database, tmp_path, name="graceful") as server:
        author = await register(server.url, "author")
        slug = await create_article(server.url, author)
        async with comment_subscription(server.url, slug, author) as client:
            await until_listening(client, lambda: add_comment(server.url, slug, "probe", author))
            # hold the comment table so that the next addComment is in flight when SIGTERM comes
            blocker = await asyncpg.connect(pg_database)
            try:
                await blocker.execute("BEGIN; LOCK TABLE comment IN EXCLUSIVE MODE")
                in_flight = asyncio.create_task(add_comment(server.url, slug, "in flight", author))

                async def waiting_for_the_lock() -> bool:
                    return bool(await blocker.fetchval(WAITING_FOR_COMMENT_LOCK))

                await until(waiting_for_the_lock, "addComment to wait for the comment table's lock")
                assert not in_flight.done()
                server.process.send_signal(signal.SIGTERM)
                await until(lambda: "Shutting down" in server.output(), "the server to start shutting down")
                await blocker.execute("COMMIT")
                comment = await asyncio.wait_for(in_flight, 10)
                assert comment["body"] == "in flight"
                stored = await blocker.fetchval("SELECT count(*) FROM comment WHERE body = 'in flight'")
                assert stored == 1
            finally:
                await blocker.close()
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await client.receive(wait=10)
            # 1012 "service restart" (README): come back later, unlike 1001 "going away"
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012, closed.value
        # uvicorn re-raises the signal once it has shut down cleanly
        assert server.process.wait(timeout=15) in (0, -signal.SIGTERM), server.output()
        assert "Application shutdown complete" in server.output()


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A cluster of this test's own, which it may stop and start."""
    cluster = Cluster()
    try:
        cluster.start()
        cluster.sql("CREATE DATABASE conduit")
        upgrade(cluster.url("conduit"))
        yield cluster
    finally:
        cluster.destroy()


async def test_database_restart_fails_fast_and_recovers_without_a_restart(own_cluster: Cluster, tmp_path: Path) -> None:
    with conduit_serve(own_cluster.url("conduit"), tmp_path, name="faults") as server:
        author = await register(server.url, "author")
        slug = await create_article(server.url, author)
        acknowledged = [await add_comment(server.url, slug, f"before {i}", author) for i in range(5)]
        async with comment_subscription(server.url, slug, author) as client:
            await until_listening(client, lambda: add_comment(server.url, slug, "probe", author))

            own_cluster.stop()
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
                started = time.monotonic()
                ready = await http.get("/readyz")
                assert ready.status_code == 503
                assert time.monotonic() - started < 1.0

                for query, token in (
                    ("{ articles(first: 5) { edges { node { slug } } } }", None),
                    (f'mutation {{ addComment(slug: "{slug}", body: "lost") {{ id }} }}', author),
                ):
                    started = time.monotonic()
                    headers = {"Authorization": f"Bearer {token}"} if token else {}
                    response = await http.post("/graphql", json={"query": query}, headers=headers)
                    assert time.monotonic() - started < 5
                    assert response.status_code in (200, 503)
                    error = response.json()["errors"][0]
                    assert error["message"] == "database unavailable"
                    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
                    assert error["extensions"]["requestId"] in server.output()

                own_cluster.start()
                deadline = time.monotonic() + 10
                while (await http.get("/readyz")).status_code != 200:
                    assert time.monotonic() < deadline, "never ready again"
                    await asyncio.sleep(0.1)
                comments = await post(
                    server.url,
                    "query($s: String!) { article(slug: $s) { comments(first: 50) { edges { node { id body } } } } }",
                    {"s": slug},
                )
            bodies = [edge["node"]["body"] for edge in comments["article"]["comments"]["edges"]]
            assert [c["body"] for c in acknowledged] == [b for b in bodies if b.startswith("before")]
            assert "lost" not in bodies

            # the subscription survived: the server listens again by itself
            await until_listening(client, lambda: add_comment(server.url, slug, "probe again", author))
            after = await add_comment(server.url, slug, "after the restart", author)
            assert await receive_bodies(client, 1) == [after]


@contextmanager
def load_balancer(upstreams: list[str], work_dir: Path) -> Iterator[str]:
    """nginx with the docker-compose balancer's configuration (deploy/nginx.conf), in front of ``upstreams``.

    Only the addresses change: the upstream servers and the listening port.
    """
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise AssertionError("nginx is not installed: apt-get install nginx-light (scripts/test.sh does)")
    port = free_port()
    prefix = work_dir / "nginx"
    (prefix / "temp").mkdir(parents=True)
    prefix.chmod(0o777)
    (prefix / "temp").chmod(0o777)
    template = NGINX_CONF.read_text()
    servers = "\n".join(f"        server {host} max_fails=2 fail_timeout=5s;" for host in upstreams)
    conf = template.replace("        server app:8000 max_fails=2 fail_timeout=5s;", servers)
    conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    temp = prefix / "temp"
    conf = conf.replace(
        "http {",
        f"http {{\n    access_log {prefix}/access.log;\n    client_body_temp_path {temp}/body;\n"
        f"    proxy_temp_path {temp}/proxy;\n    fastcgi_temp_path {temp}/fastcgi;\n"
        f"    uwsgi_temp_path {temp}/uwsgi;\n    scgi_temp_path {temp}/scgi;\n",
        1,
    )
    assert conf.count("server 127.0.0.1:") == len(upstreams), "deploy/nginx.conf changed shape"
    conf = f"daemon off;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log warn;\n" + conf
    (prefix / "nginx.conf").write_text(conf)
    process = subprocess.Popen([nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf")], stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.TransportError as error:
                if process.poll() is not None or time.monotonic() > deadline:
                    stderr = process.stderr.read() if process.stderr else b""
                    raise AssertionError(f"nginx did not start: {stderr!r}") from error
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def _graphql_requests(server: Server) -> int:
    return server.output().count('"path": "/graphql"')


async def test_two_replicas_behind_the_load_balancer(pg_database: str, tmp_path: Path) -> None:
    """The docker-compose topology as plain processes: nginx, two replicas, one PostgreSQL database."""
    with (
        conduit_serve(pg_database, tmp_path, name="replica1") as one,
        conduit_serve(pg_database, tmp_path, name="replica2") as two,
        load_balancer([one.url.removeprefix("http://"), two.url.removeprefix("http://")], tmp_path) as url,
    ):
        author = await register(url, "author")
        reader = await register(url, "reader")
        slug = await create_article(url, author)
        async with comment_subscription(url, slug, reader) as client:
            await until_listening(client, lambda: add_comment(url, slug, "probe", author))
            sent = [await add_comment(url, slug, f"through the balancer {i}", author) for i in range(6)]
            assert await receive_bodies(client, len(sent)) == sent
        assert _graphql_requests(one) > 0 and _graphql_requests(two) > 0, "the balancer used one replica only"

        # a replica going away costs no request: the balancer moves on to the other one
        one.process.send_signal(signal.SIGTERM)
        one.process.wait(timeout=15)
        for i in range(6):
            data = await post(url, "query($s: String!) { article(slug: $s) { slug } }", {"s": slug})
            assert data["article"]["slug"] == slug
            await add_comment(url, slug, f"after one replica stopped {i}", reader)
