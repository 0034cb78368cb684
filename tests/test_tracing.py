"""OpenTelemetry tracing (``graph/observability/tracing.py``, ``db/tracing.py``).

The span trees come from the SDK's in-memory exporter, wired in through the same
``tracing_from_environment`` the app uses; one test runs a real ``conduit serve`` that exports
over OTLP/HTTP to a receiver the test starts.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette

from graph.app import create_app
from graph.observability import RequestIdFilter, json_formatter
from graph.observability.tracing import (
    TracingConfigurationError,
    tracing_enabled,
    tracing_from_environment,
)
from graph.settings import Settings
from tests.conftest import GQL
from tests.live import live_app
from tests.waiting import until_sync

SECRET_TAG = "tag-no-span-may-hold-7f3a"
SECRET_TITLE = "A title no span may hold 9c1e"

HOME = """
query Home($tag: String) {
  articles(first: 5, tag: $tag) { totalCount edges { node { slug title tagList author { username } } } }
}
"""
CREATE = """
mutation Create($input: CreateArticleInput!) { createArticle(input: $input) { slug title } }
"""


class Spans:
    """The finished spans of one app, as a tree."""

    def __init__(self, exporter: InMemorySpanExporter) -> None:
        self.exporter = exporter

    def all(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def clear(self) -> None:
        self.exporter.clear()

    def roots(self) -> list[ReadableSpan]:
        ids = {span.context.span_id for span in self.all()}
        return [span for span in self.all() if span.parent is None or span.parent.span_id not in ids]

    def children(self, parent: ReadableSpan) -> list[ReadableSpan]:
        kids = [s for s in self.all() if s.parent is not None and s.parent.span_id == parent.context.span_id]
        return sorted(kids, key=lambda span: span.start_time or 0)

    def below(self, parent: ReadableSpan) -> list[ReadableSpan]:
        """Every descendant of ``parent``."""
        out: list[ReadableSpan] = []
        for child in self.children(parent):
            out += [child, *self.below(child)]
        return out

    def one(self, name: str, within: ReadableSpan | None = None) -> ReadableSpan:
        found = [s for s in (self.all() if within is None else self.children(within)) if s.name == name]
        assert len(found) == 1, (name, [s.name for s in self.all()])
        return found[0]


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
async def traced_app(settings: Settings, exporter: InMemorySpanExporter) -> AsyncIterator[Starlette]:
    tracing = tracing_from_environment({}, processors=[SimpleSpanProcessor(exporter)])
    # a budget too small to lease (db/budget.py): every charge is a statement, with its span
    application = create_app(settings.model_copy(update={"rate_limit_points": 60}), tracing=tracing)
    yield application
    state = application.state.conduit
    await state.broker.close()
    await state.db.dispose()
    assert tracing is not None
    tracing.shutdown()


@pytest.fixture
async def traced(traced_app: Starlette) -> AsyncIterator[GQL]:
    transport = httpx.ASGITransport(app=traced_app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield GQL(http)


@pytest.fixture
def spans(exporter: InMemorySpanExporter) -> Spans:
    return Spans(exporter)


async def register(gql: GQL, name: str = "tracy") -> str:
    data = await gql.ok(
        "mutation R($i: RegisterInput!) { register(input: $i) { token } }",
        {"i": {"username": name, "email": f"{name}@example.com", "password": "password123"}},
    )
    return str(data["register"]["token"])


def attribute_values(spans: list[ReadableSpan]) -> list[str]:
    return [str(value) for span in spans for value in (span.attributes or {}).values()]


def check_operation_tree(
    spans: Spans, app: Starlette, operation: str, path: str, engine_name: str, secret: str
) -> tuple[ReadableSpan, list[ReadableSpan]]:
    """HTTP span → operation span → every admission step, then ``execute`` (with ``path``) → SQL.
    Returns the HTTP span and the SQL spans below ``execute``."""
    (http,) = spans.roots()
    assert http.kind is SpanKind.SERVER
    assert http.name == "POST /graphql"
    assert http.attributes is not None
    assert http.attributes["http.request.method"] == "POST"
    assert http.attributes["http.route"] == "/graphql"
    assert http.attributes["http.response.status_code"] == 200
    assert "url.query" not in http.attributes
    # the transport's own statement (the viewer's lookup) is the HTTP span's; the rest the operation's
    (graphql,) = [span for span in spans.children(http) if span.kind is not SpanKind.CLIENT]
    assert graphql.name == operation
    kind, name = operation.split()
    assert graphql.attributes is not None
    assert graphql.attributes["graphql.operation.type"] == kind
    assert graphql.attributes["graphql.operation.name"] == name
    assert "graphql.document" not in graphql.attributes
    steps = app.state.conduit.admission.names()
    assert [s.name for s in spans.children(graphql)] == [*steps, "execute"]
    assert "budget" in steps and "parse" in steps and "validate" in steps
    execute = spans.children(graphql)[-1]
    assert execute.attributes is not None
    assert execute.attributes["conduit.execution.path"] == path
    sql = [s for s in spans.below(execute) if s.kind is SpanKind.CLIENT]
    assert sql, [s.name for s in spans.below(execute)]
    system = "sqlite" if engine_name == "sqlite" else "postgresql"
    for span in sql:
        assert span.attributes is not None
        assert span.attributes["db.system.name"] == system
        assert span.attributes["db.system"] == system
        assert str(span.attributes["db.query.text"]).split(None, 1)[0].upper() == span.name
    # the value passed as a variable reached the database, but no span holds it
    assert all(secret not in value for value in attribute_values(spans.all()))
    # the budget's charge is a statement too
    assert any(s.kind is SpanKind.CLIENT for s in spans.below(spans.one("budget", graphql)))
    return http, sql


async def test_a_planned_query_traces_http_operation_steps_execution_and_each_statement(
    traced: GQL, traced_app: Starlette, spans: Spans, engine_name: str
) -> None:
    token = await register(traced)
    await traced.ok(
        CREATE, {"input": {"title": "Tagged", "description": "d", "body": "b", "tagList": [SECRET_TAG]}}, token
    )
    spans.clear()

    response = await traced(HOME, {"tag": SECRET_TAG})

    assert response.status == 200 and response.data["articles"]["totalCount"] == 1
    http, sql = check_operation_tree(spans, traced_app, "query Home", "planned", engine_name, SECRET_TAG)
    assert http.attributes is not None
    assert http.attributes["conduit.request_id"] == response.headers["x-request-id"]
    # planned SQL's statements (fetch_raw), one span each, with placeholders where the tag went
    texts = [str((s.attributes or {})["db.query.text"]) for s in sql]
    assert all(name == "SELECT" for name in (s.name for s in sql)), texts
    assert any(("?" if engine_name == "sqlite" else "$1") in text for text in texts), texts
    # the page and its count; on PostgreSQL the count comes with the page (one round trip)
    assert len(sql) == (2 if engine_name == "sqlite" else 1), texts


async def test_an_ordinary_mutation_traces_sqlalchemy_statements_below_execute(
    traced: GQL, traced_app: Starlette, spans: Spans, engine_name: str
) -> None:
    token = await register(traced)
    spans.clear()

    response = await traced(CREATE, {"input": {"title": SECRET_TITLE, "description": "d", "body": "b"}}, token=token)

    assert response.status == 200 and not response.errors
    _http, sql = check_operation_tree(spans, traced_app, "mutation Create", "ordinary", engine_name, SECRET_TITLE)
    assert "INSERT" in {span.name for span in sql}


async def test_an_incoming_traceparent_makes_the_request_part_of_that_trace(traced: GQL, spans: Spans) -> None:
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"

    await traced.client.post(
        "/graphql", json={"query": "{ tags }"}, headers={"traceparent": f"00-{trace_id}-{parent_id}-01"}
    )

    (http,) = spans.roots()
    assert http.parent is not None and f"{http.parent.span_id:016x}" == parent_id
    assert {f"{span.context.trace_id:032x}" for span in spans.all()} == {trace_id}


async def test_a_caller_that_sampled_its_trace_out_gets_no_spans_here(traced: GQL, spans: Spans) -> None:
    # the default sampler, parentbased_always_on, follows the caller's decision (flags 00)
    response = await traced.client.post(
        "/graphql",
        json={"query": "query Tags { tags }"},
        headers={"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"},
    )

    assert response.status_code == 200 and response.json()["data"] == {"tags": []}
    assert spans.all() == []


async def test_the_access_log_names_the_trace_and_the_trace_names_the_request(traced: GQL, spans: Spans) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    handler.addFilter(RequestIdFilter())
    root, level = logging.getLogger(), logging.getLogger().level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        response = await traced.client.post("/graphql", json={"query": "{ tags }"}, headers={"X-Request-ID": "req-42"})
    finally:
        root.removeHandler(handler)
        root.setLevel(level)

    (line,) = [json.loads(text) for text in stream.getvalue().splitlines() if '"conduit.access"' in text]
    (http,) = spans.roots()
    assert response.headers["x-request-id"] == "req-42" == line["request_id"]
    assert http.attributes is not None and http.attributes["conduit.request_id"] == "req-42"
    assert line["trace_id"] == f"{http.context.trace_id:032x}"
    assert line["span_id"] == f"{http.context.span_id:016x}"


async def test_a_refused_operation_marks_the_step_that_refused(traced: GQL, spans: Spans) -> None:
    response = await traced("query Bad { nope }")

    assert response.codes == ["BAD_USER_INPUT"]
    (http,) = spans.roots()
    (graphql,) = spans.children(http)
    assert graphql.name == "query Bad"
    assert graphql.status.status_code is StatusCode.ERROR
    assert graphql.attributes is not None and graphql.attributes["error.type"] == "BAD_USER_INPUT"
    refused = spans.children(graphql)[-1]
    assert refused.name == "validate" and refused.status.status_code is StatusCode.ERROR
    assert not refused.events  # no exception event: its message could quote a value


async def test_a_websocket_operation_is_a_trace_of_its_own(
    settings: Settings, exporter: InMemorySpanExporter, spans: Spans
) -> None:
    tracing = tracing_from_environment({}, processors=[SimpleSpanProcessor(exporter)])
    with live_app(settings, tracing) as (url, _app):
        ws_url = url.replace("http://", "ws://") + "/graphql"
        async with websockets.connect(ws_url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")]) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "connection_ack"
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": "query Tags { tags }"}}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "next"
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "complete"

    operation = spans.one("query Tags")
    assert operation.parent is None  # no span for the connection, which may last hours
    assert [s.name for s in spans.children(operation)][-1] == "execute"
    assert (operation.attributes or {})["conduit.request_id"]


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "conduit"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, False),
        ({"OTEL_SDK_DISABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
    ],
)
def test_only_the_standard_variables_switch_tracing_on(environ: dict[str, str], on: bool) -> None:
    assert tracing_enabled(environ) is on
    tracing = tracing_from_environment(environ)
    assert (tracing is not None) is on
    if tracing is not None:
        tracing.shutdown()


def test_an_exporter_that_is_not_installed_is_refused_at_start() -> None:
    with pytest.raises(TracingConfigurationError, match="grpc"):
        tracing_from_environment({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    with pytest.raises(TracingConfigurationError, match="zipkin"):
        tracing_from_environment({"OTEL_TRACES_EXPORTER": "zipkin"})


def test_the_service_name_defaults_to_conduit_and_follows_otel_service_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    tracing = tracing_from_environment({}, processors=[])
    assert tracing is not None
    assert tracing.provider.resource.attributes["service.name"] == "conduit"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "conduit-eu1")  # the SDK reads it from os.environ
    named = tracing_from_environment({}, processors=[])
    assert named is not None
    assert named.provider.resource.attributes["service.name"] == "conduit-eu1"


async def test_off_by_default_the_app_builds_no_tracing(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    application = create_app(settings)
    try:
        assert application.state.tracing is None
        state = application.state.conduit
        assert state.db.sql_spans is None and state.admission.tracer is None
    finally:
        await application.state.conduit.db.dispose()


async def test_a_failing_statement_records_its_class_never_its_message(
    traced_app: Starlette, spans: Spans, engine_name: str
) -> None:
    db = traced_app.state.conduit.db
    placeholder = "?" if engine_name == "sqlite" else "$1"
    failing_sql = f"SELECT no_such_column FROM tag WHERE name = {placeholder}"
    with pytest.raises(Exception, match="no_such_column") as raised:
        await db.fetch_raw([("SELECT 1", []), (failing_sql, [SECRET_TAG])])

    first, failing = sorted(spans.all(), key=lambda span: span.start_time or 0)
    assert first.status.status_code is StatusCode.UNSET and (first.attributes or {})["db.query.text"] == "SELECT 1"
    assert failing.status.status_code is StatusCode.ERROR
    assert failing.status.description is None and not failing.events
    assert (failing.attributes or {})["db.query.text"] == failing_sql
    assert (failing.attributes or {})[
        "error.type"
    ] == f"{type(raised.value).__module__}.{type(raised.value).__qualname__}"
    assert all(SECRET_TAG not in value and str(raised.value) != value for value in attribute_values([failing]))


# One real export: conduit serve → OTLP/HTTP → a receiver of our own


class Receiver:
    """An OTLP/HTTP receiver on 127.0.0.1: records the body of every ``POST /v1/traces``."""

    def __init__(self) -> None:
        received = self.received = list[bytes]()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path == "/v1/traces" and self.headers.get("Content-Type") == "application/x-protobuf":
                    received.append(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def span_names(self) -> set[str]:
        names = set()
        for body in list(self.received):
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            for resource_spans in request.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    names |= {span.name for span in scope_spans.spans}
        return names

    def service_names(self) -> set[str]:
        names = set()
        for body in list(self.received):
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            for resource_spans in request.resource_spans:
                for attribute in resource_spans.resource.attributes:
                    if attribute.key == "service.name":
                        names.add(attribute.value.string_value)
        return names


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
        receiver.thread.join(timeout=10)


@pytest.mark.slow  # a server process
def test_conduit_serve_exports_over_otlp_http(receiver: Receiver, database_url: str, tmp_path: Path) -> None:
    from tests.test_deployment import conduit_serve

    env: Mapping[str, str] = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_BSP_SCHEDULE_DELAY": "50",  # ms: export soon after the request
        "OTEL_SERVICE_NAME": "conduit-under-test",
    }
    with conduit_serve(database_url, tmp_path, env=dict(env)) as server:
        response = httpx.post(f"{server.url}/graphql", json={"query": "query Tags { tags }"}, timeout=10)
        assert response.status_code == 200

        until_sync(
            lambda: "query Tags" in receiver.span_names(),
            lambda: f"an export with the span 'query Tags', got {sorted(receiver.span_names())}",
            within=20,
        )

    assert {"POST /graphql", "execute", "parse"} <= receiver.span_names()
    assert receiver.service_names() == {"conduit-under-test"}
