"""``/metrics``, request ids and the JSON access log, through the real HTTP endpoint."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import pty
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from graph.observability import RequestIdFilter, json_formatter, json_logs
from graph.settings import Settings
from tests.conftest import GQL, User
from tests.live import live_server
from tests.waiting import until

HEX_ID = re.compile(r"[0-9a-f]{32}")


async def metric(client: httpx.AsyncClient, name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` with exactly ``labels``, read from ``/metrics``."""
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


def operation(name: str, type_: str, outcome: str) -> dict[str, str]:
    return {"operation_name": name, "operation_type": type_, "outcome": outcome}


class JsonLines:
    """JSON log lines written to a handler with the production formatter and filter."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(json_formatter())
        self.handler.addFilter(RequestIdFilter())

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def records(self, logger: str | None = None) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in self.text.splitlines() if line.startswith("{")]
        return [line for line in lines if logger is None or line["logger"] == logger]


@pytest.fixture
def logs() -> Iterator[JsonLines]:
    """Everything logged at DEBUG or above while the test runs, as JSON lines."""
    lines = JsonLines()
    root = logging.getLogger()
    level = root.level
    root.addHandler(lines.handler)
    root.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        root.removeHandler(lines.handler)
        root.setLevel(level)


async def test_named_query_counts_by_name_type_and_outcome(client: httpx.AsyncClient, gql: GQL) -> None:
    labels = operation("Tags", "query", "ok")
    assert await metric(client, "conduit_graphql_requests_total", **labels) is None
    for _ in range(2):
        await gql.ok("query Tags { tags }")
    assert await metric(client, "conduit_graphql_requests_total", **labels) == 2
    assert await metric(client, "conduit_graphql_request_duration_seconds_count", **labels) == 2
    assert (await metric(client, "conduit_graphql_request_duration_seconds_sum", **labels) or 0) > 0
    assert await metric(client, "conduit_graphql_request_duration_seconds_bucket", **labels, le="+Inf") == 2
    await gql.ok("{ tags }")
    assert await metric(client, "conduit_graphql_requests_total", **operation("anonymous", "query", "ok")) == 1
    assert await metric(client, "conduit_http_requests_total", method="POST", path="/graphql", status="200") == 3


async def test_errors_alongside_data_are_an_error_outcome_counted_by_code(client: httpx.AsyncClient, gql: GQL) -> None:
    response = await gql("query Feed { feed { totalCount } }")
    assert response.status == 200 and response.codes == ["UNAUTHENTICATED"]
    assert "data" in response.body
    assert await metric(client, "conduit_graphql_requests_total", **operation("Feed", "query", "error")) == 1
    assert await metric(client, "conduit_graphql_resolver_errors_total", code="UNAUTHENTICATED") == 1
    response = await gql("query Page { articles(first: -1) { totalCount } }")
    assert response.codes == ["BAD_USER_INPUT"]
    assert await metric(client, "conduit_graphql_resolver_errors_total", code="BAD_USER_INPUT") == 1


async def test_request_errors_are_rejected(client: httpx.AsyncClient, gql: GQL) -> None:
    response = await gql("query Broken { noSuchField }")
    assert "data" not in response.body and response.codes == ["BAD_USER_INPUT"]
    assert await metric(client, "conduit_graphql_requests_total", **operation("Broken", "query", "rejected")) == 1
    response = await gql("query {")
    assert "data" not in response.body
    assert await metric(client, "conduit_graphql_requests_total", **operation("anonymous", "unknown", "rejected")) == 1
    await gql("subscription Live { articlePublished { title } }")
    labels = operation("Live", "subscription", "rejected")
    assert await metric(client, "conduit_graphql_requests_total", **labels) == 1
    get_mutation = await client.get("/graphql", params={"query": "mutation Out { logout }"})
    assert get_mutation.status_code == 405
    assert await metric(client, "conduit_graphql_requests_total", **operation("Out", "mutation", "rejected")) == 1
    not_json = await client.post("/graphql", content=b"not json", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400
    assert await metric(client, "conduit_graphql_requests_total", **operation("anonymous", "unknown", "rejected")) == 2
    assert await metric(client, "conduit_graphql_resolver_errors_total", code="BAD_USER_INPUT") == 5
    await gql("query Me { viewer { username } }", token="forged")
    labels = operation("anonymous", "unknown", "unauthenticated")
    assert await metric(client, "conduit_graphql_requests_total", **labels) == 1
    assert await metric(client, "conduit_graphql_resolver_errors_total", code="UNAUTHENTICATED") == 1


async def test_operation_name_labels_are_bounded(app: Any, client: httpx.AsyncClient, gql: GQL) -> None:
    metrics = app.state.metrics
    long_name = "Q" + "x" * 200
    await gql.ok(f"query {long_name} {{ tags }}")
    assert await metric(client, "conduit_graphql_requests_total", **operation(long_name[:64], "query", "ok")) == 1
    metrics._operation_names.update(f"Seen{i}" for i in range(500))
    await gql.ok("query Fresh { tags }")
    assert await metric(client, "conduit_graphql_requests_total", **operation("other", "query", "ok")) == 1


async def test_http_requests_are_labelled_by_route(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/no/such/page")).status_code == 404
    assert await metric(client, "conduit_http_requests_total", method="GET", path="/healthz", status="200") == 1
    assert await metric(client, "conduit_http_requests_total", method="GET", path="other", status="404") == 1
    assert await metric(client, "conduit_http_requests_total", method="GET", path="/metrics", status="200") is not None


async def test_pool_gauge_is_read_at_scrape_time(client: httpx.AsyncClient, gql: GQL) -> None:
    # a mutation graphql-core runs: a transaction on the engine's pool (planned reads use the driver's)
    await gql.ok(
        'mutation { register(input: {username: "gauge", email: "gauge@example.com", password: "correct-horse-9"}) { token } }'
    )
    assert await metric(client, "conduit_db_pool_connections", state="checked_out") == 0
    assert (await metric(client, "conduit_db_pool_connections", state="idle") or 0) >= 1
    assert await metric(client, "conduit_db_pool_connections", state="overflow") == 0


async def test_request_id_is_echoed_when_sane_and_generated_otherwise(client: httpx.AsyncClient, gql: GQL) -> None:
    given = "req-42.A_b"
    assert (await gql("{ tags }", None, None, **{"X-Request-ID": given})).headers["x-request-id"] == given
    generated = (await gql("{ tags }")).headers["x-request-id"]
    assert HEX_ID.fullmatch(generated)
    for insane in ("has spaces", "x" * 129, "semi;colon", "new\tline"):
        echoed = (await gql("{ tags }", None, None, **{"X-Request-ID": insane})).headers["x-request-id"]
        assert HEX_ID.fullmatch(echoed), insane
    assert (await client.get("/healthz", headers={"X-Request-ID": given})).headers["x-request-id"] == given
    assert HEX_ID.fullmatch((await client.get("/nowhere")).headers["x-request-id"])


async def test_access_log_is_one_json_line_per_request(client: httpx.AsyncClient, gql: GQL, logs: JsonLines) -> None:
    response = await gql("query Tags { tags }", None, None, **{"X-Request-ID": "trace-1"})
    assert response.status == 200
    await client.get("/healthz")
    lines = logs.records("conduit.access")
    assert len(lines) == 2
    line = lines[0]
    assert {
        key: line[key]
        for key in ("request_id", "method", "path", "status", "operation_name", "operation_type", "outcome")
    } == {
        "request_id": "trace-1",
        "method": "POST",
        "path": "/graphql",
        "status": 200,
        "operation_name": "Tags",
        "operation_type": "query",
        "outcome": "ok",
    }
    assert line["viewer_id"] is None and line["client"] == "127.0.0.1"
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["level"] == "INFO" and line["time"] and line["message"] == "POST /graphql 200"
    assert lines[1]["path"] == "/healthz" and lines[1]["operation_name"] is None and lines[1]["outcome"] is None


async def test_masked_error_request_id_matches_the_logs(
    client: httpx.AsyncClient, gql: GQL, logs: JsonLines, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_args: Any) -> list[tuple[str, int]]:
        raise RuntimeError("the tag table caught fire")

    monkeypatch.setattr("graph.queries.tag_counts", broken)
    # planned SQL fails first and hands the operation to graphql-core, whose resolver fails too
    monkeypatch.setattr("graph.execution.planned.roots.TagList.start", _planned_failure)
    response = await gql("query Tags { tags }")
    assert response.codes == ["INTERNAL_SERVER_ERROR"]
    assert "fire" not in response.errors[0]["message"]
    request_id = response.errors[0]["extensions"]["requestId"]
    assert request_id == response.headers["x-request-id"]
    (access,) = logs.records("conduit.access")
    assert access["request_id"] == request_id and access["outcome"] == "error"
    (error,) = logs.records("conduit.errors")
    assert error["request_id"] == request_id and "the tag table caught fire" in error["exc_info"]
    assert await metric(client, "conduit_graphql_resolver_errors_total", code="INTERNAL_SERVER_ERROR") == 1


async def test_no_token_or_password_is_logged(gql: GQL, logs: JsonLines, alice: User) -> None:
    login = await gql.ok(
        "mutation Login($input: LoginInput!) { login(input: $input) { token refreshToken } }",
        {"input": {"email": alice.email, "password": alice.password}},
    )
    token = login["login"]["token"]
    viewer = await gql.ok("query Me { viewer { id username } }", token=token)
    assert viewer["viewer"]["username"] == "alice"
    me = logs.records("conduit.access")[-1]
    assert me["operation_name"] == "Me" and isinstance(me["viewer_id"], int)
    assert logs.text
    for secret in (alice.password, alice.token, alice.refresh_token, token, login["login"]["refreshToken"]):
        assert secret not in logs.text
    assert "authorization" not in logs.text.lower() and "bearer" not in logs.text.lower()


async def test_unhandled_exception_is_a_500_with_request_id(
    client: httpx.AsyncClient, logs: JsonLines, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("outside any resolver")

    monkeypatch.setattr("graph.transport.http.read_params", broken)
    response = await client.post("/graphql", json={"query": "{ tags }"}, headers={"X-Request-ID": "oops-1"})
    assert response.status_code == 500 and response.headers["x-request-id"] == "oops-1"
    (error,) = logs.records("conduit.http")
    assert error["request_id"] == "oops-1" and "outside any resolver" in error["exc_info"]
    (access,) = logs.records("conduit.access")
    assert access["status"] == 500 and access["outcome"] == "failed"
    labels = operation("anonymous", "unknown", "failed")
    assert await metric(client, "conduit_graphql_requests_total", **labels) == 1


async def live_metric(url: str, name: str, **labels: str) -> float | None:
    async with httpx.AsyncClient(base_url=url) as http:
        return await metric(http, name, **labels)


async def wait_for_metric(url: str, expected: float, name: str, **labels: str) -> None:
    async def reached() -> bool:
        return await live_metric(url, name, **labels) == expected

    await until(reached, f"{name}{labels} to become {expected}")


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_active_subscriptions_follow_the_connection(settings: Settings, protocol: str) -> None:
    with live_server(settings) as url:
        field = {"field": "articlePublished"}
        assert await live_metric(url, "conduit_subscriptions_active", **field) == 0
        ws_url = url.replace("http://", "ws://") + "/graphql"
        async with websockets.connect(ws_url, subprotocols=[websockets.Subprotocol(protocol)]) as ws:
            assert ws.response is not None and HEX_ID.fullmatch(ws.response.headers["x-request-id"])
            await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "connection_ack"
            kind = "start" if protocol == "graphql-ws" else "subscribe"
            query = "subscription Live { articlePublished { title } }"
            await ws.send(json.dumps({"id": "1", "type": kind, "payload": {"query": query}}))
            await wait_for_metric(url, 1, "conduit_subscriptions_active", **field)
        await wait_for_metric(url, 0, "conduit_subscriptions_active", **field)
        assert await live_metric(url, "conduit_subscriptions_active", field="commentAdded") == 0


async def test_subscription_errors_are_counted(settings: Settings) -> None:
    with live_server(settings) as url:
        ws_url = url.replace("http://", "ws://") + "/graphql"
        async with websockets.connect(ws_url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")]) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "connection_ack"
            query = 'subscription { commentAdded(slug: "missing") { body } }'
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
            while json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] != "complete":
                pass
        await wait_for_metric(url, 1, "conduit_graphql_resolver_errors_total", code="NOT_FOUND")
        await wait_for_metric(url, 0, "conduit_subscriptions_active", field="commentAdded")


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)


@pytest.mark.slow  # fresh Python processes
def test_configure_logging_writes_json_lines_with_uvicorn_included() -> None:
    result = run_python(
        "import logging\n"
        "from graph.observability import configure_logging\n"
        "configure_logging('info')\n"
        "logging.getLogger('conduit.test').info('hello %s', 'world', extra={'answer': 42})\n"
        "logging.getLogger('uvicorn.error').info('Started server process')\n"
        "logging.getLogger('conduit.test').debug('hidden')\n"
    )
    first, second = (json.loads(line) for line in result.stderr.splitlines())
    assert first["message"] == "hello world" and first["answer"] == 42
    assert first["level"] == "INFO" and first["logger"] == "conduit.test" and first["time"]
    assert "request_id" not in first
    assert second["logger"] == "uvicorn.error"


@pytest.mark.slow  # fresh Python processes
def test_configure_logging_text_format() -> None:
    result = run_python(
        "import logging\n"
        "from graph.observability import configure_logging\n"
        "configure_logging('debug', json=False)\n"
        "logging.getLogger('conduit.test').debug('plain')\n"
    )
    assert result.stderr.rstrip().endswith("DEBUG conduit.test [-] plain")


def test_serve_passes_the_logging_config_to_uvicorn(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    import uvicorn

    from graph import cli, observability

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: seen.update(kwargs))
    monkeypatch.setattr(observability, "configure_logging", lambda level, json: seen.update(configured=(level, json)))
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'serve.db'}", jwt_secret_file=tmp_path / "secret")
    args = cli.build_parser().parse_args(["serve", "--log-format", "text", "--log-level", "warning"])
    assert cli._serve(args, settings) == 0
    assert seen["configured"] == ("warning", False)
    assert seen["access_log"] is False
    config = seen["log_config"]
    assert config["root"]["level"] == "WARNING" and config["formatters"]["conduit"]["format"]
    assert cli.build_parser().parse_args(["serve"]).log_format is None  # CONDUIT_LOG_FORMAT decides


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize(
    ("log_format", "production", "tty", "expected"),
    [
        ("auto", False, True, False),  # a developer's terminal: text
        ("auto", False, False, True),  # a pipe, a file, a container's log driver: JSON
        ("auto", True, True, True),  # production: JSON even on a terminal
        ("json", False, True, True),
        ("text", True, False, False),
    ],
)
def test_log_format_auto_is_text_on_a_terminal_in_development_only(
    log_format: Any, production: bool, tty: bool, expected: bool
) -> None:
    assert json_logs(log_format, production=production, stream=_Stream(tty)) is expected


@pytest.mark.parametrize(
    ("flag", "env", "setting", "expected"),
    [
        ([], "development", "auto", True),  # pytest's captured stderr is no terminal
        ([], "development", "text", False),
        (["--log-format", "json"], "development", "text", True),  # the flag beats the setting
        (["--log-format", "text"], "production", "json", False),
    ],
)
def test_serve_takes_the_log_format_from_the_flag_else_the_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, flag: list[str], env: Any, setting: Any, expected: bool
) -> None:
    import uvicorn

    from graph import cli, observability

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: seen.update(kwargs))
    monkeypatch.setattr(observability, "configure_logging", lambda level, json: seen.update(json=json))
    settings = Settings(
        env=env,
        log_format=setting,
        database_url=f"sqlite:///{tmp_path / 'serve.db'}",
        jwt_secret="s" * 40,
        jwt_secret_file=tmp_path / "secret",
        # production serves only with a mail server for account mails
        smtp_url="smtp://127.0.0.1:1",
        mail_from="Conduit <no-reply@conduit.example>",
        public_url="https://conduit.example",
    )
    assert cli._serve(cli.build_parser().parse_args(["serve", *flag]), settings) == 0
    assert seen["json"] is expected
    assert ("()" in seen["log_config"]["formatters"]["conduit"]) is expected  # the JSON formatter's factory


def test_development_logs_are_text_on_a_real_terminal_and_json_through_a_pipe() -> None:
    code = (
        "import logging\n"
        "from graph.observability import configure_logging, json_logs\n"
        "configure_logging('info', json=json_logs('auto', production=False))\n"
        "logging.getLogger('conduit.test').info('hello')\n"
    )
    piped = run_python(code).stderr.strip()
    assert json.loads(piped)["message"] == "hello"
    primary, secondary = pty.openpty()
    try:
        subprocess.run([sys.executable, "-c", code], stderr=secondary, timeout=60, check=True)
        os.set_blocking(primary, False)  # written already; never wait for more
        on_terminal = os.read(primary, 65536).decode()
    finally:
        os.close(primary)
        os.close(secondary)
    assert on_terminal.rstrip().endswith("INFO conduit.test [-] hello"), on_terminal


@pytest.mark.slow  # fresh Python processes
def test_multiprocess_metrics_add_up_every_worker(tmp_path: Any) -> None:
    directory = tmp_path / "prometheus"
    directory.mkdir()
    worker = (
        "import os, sys\n"
        f"os.environ['PROMETHEUS_MULTIPROC_DIR'] = {str(directory)!r}\n"
        "from graph.observability import Metrics\n"
        "metrics = Metrics()\n"
        "metrics.graphql_requests.labels('Tags', 'query', 'ok').inc()\n"
        "metrics.subscriptions_active.labels('articlePublished').inc()\n"
        "sys.stdout.write(metrics.exposition().decode())\n"
    )
    run_python(worker)
    text = run_python(worker).stdout
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    key = (
        "conduit_graphql_requests_total",
        (("operation_name", "Tags"), ("operation_type", "query"), ("outcome", "ok")),
    )
    assert samples[key] == 2


def _planned_failure(*_args: Any) -> None:
    raise RuntimeError("planned SQL failed")
