"""Spans for SQL statements (OpenTelemetry), whichever way a statement reaches the database.

Two ways lead to the database (``db/engine.py``): SQLAlchemy (sessions, Core statements) and
driver SQL (``Database.fetch_raw`` and ``Database.write``: raw aiosqlite, ``sqlite3`` inline on
the event loop, or asyncpg). SQLAlchemy's statements get their span from its cursor events
(``before_cursor_execute`` / ``after_cursor_execute`` / ``handle_error``); driver SQL never
reaches a cursor event with an execution context, so ``Database`` asks ``SQLSpans`` for its spans
itself. Not opentelemetry-instrumentation-sqlalchemy: its listener reads ``conn.engine`` and
would fail on the statements ``db.adapters.sqlalchemy.announce`` shows listeners with no
connection, and it sees none of driver SQL, the hot path.

Attributes follow OpenTelemetry's database semantic conventions (v1.33, stable for SQL):
``db.system.name`` (``sqlite``, ``postgresql``; also the older ``db.system`` for backends that
read only that), ``db.query.text`` (the statement as sent: every statement here is
parameterized, so its text holds placeholders, never values; parameters are never recorded),
``db.operation.name`` (the statement's first keyword), ``db.operation.batch.size`` for a write
transaction of several statements, and ``server.address``/``server.port``/``db.namespace`` on
PostgreSQL. The span name is ``db.operation.name`` (``SELECT``; ``BATCH`` for a batch), as the
conventions allow when the target is not known without parsing. A failing statement's span gets
status ``ERROR`` and ``error.type`` (the exception's class), never the message: a driver's
message can quote a value (PostgreSQL's ``Key (email)=(...) already exists``).

This module imports nothing of ``graph/``; the app (``graph/observability/tracing.py``) gives a
``Database`` its ``SQLSpans`` with ``trace_statements``. Without it nothing here runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer, get_current_span
from sqlalchemy import event
from sqlalchemy.engine import make_url

from db.sqlite_driver import Decide, Statements

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from db.engine import Database

__all__ = ["SQLSpans", "trace_statements"]

_SPAN_ATTRIBUTE = "_conduit_span"  # where a SQLAlchemy statement's span waits for its end


def sampled_out() -> bool:
    """Whether the current span was sampled out: its children would be too (every built-in
    sampler decides once per trace), so callers skip making them. Not sampled out when no span
    is current (a new trace's root decides for itself)."""
    context = get_current_span().get_span_context()
    return context.is_valid and not context.trace_flags.sampled


def operation_name(sql: str) -> str:
    """The statement's first keyword, upper-cased (``SELECT``, ``INSERT``, ``WITH``, ``BEGIN``...)."""
    head = sql.lstrip(" \t\r\n(")[:16].split(None, 1)
    return head[0].upper() if head else "SQL"


class SQLSpans:
    """Makes the spans of one database's statements with ``tracer`` (module docstring).

    ``system`` is ``sqlite`` or ``postgresql``; ``base`` the attributes every span carries
    (``db.system.name``, and the server's address on PostgreSQL).
    """

    def __init__(self, tracer: Tracer, system: str, base: dict[str, str | int]) -> None:
        self.tracer = tracer
        self.system = system
        self.base = base

    def wanted(self) -> bool:
        """Whether the statements about to run get spans: not in a trace that was sampled out."""
        return not sampled_out()

    def statement(self, sql: str, *, start_time: int | None = None) -> Span:
        """A started span (kind ``CLIENT``) for one statement; the caller ends it (``end_time`` in ns)."""
        name = operation_name(sql)
        attributes = {**self.base, "db.query.text": sql, "db.operation.name": name}
        return self.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes, start_time=start_time)

    def timed(
        self,
        statements: Sequence[tuple[str, Any]],
        started: int,
        ended: Sequence[int],
        error: BaseException | None = None,
    ) -> None:
        """Spans for statements that already ran one after another from ``started`` (ns since the
        epoch), statement ``i`` ending at ``ended[i]``: SQLite runs a read plan in one call. With
        ``error``, the statement after the last that ended failed with it (and none ran after)."""
        for (sql, _parameters), end in zip(statements, ended, strict=False):
            self.statement(sql, start_time=started).end(end_time=end)
            started = end
        if error is not None and len(ended) < len(statements):
            span = self.statement(statements[len(ended)][0], start_time=started)
            failed(span, error)
            span.end()

    async def fetch(self, connection: Any, sql: str, parameters: Sequence[Any]) -> list[Any]:
        """asyncpg's ``connection.fetch(sql, *parameters)`` in its span."""
        with self.one(sql):
            return await connection.fetch(sql, *parameters)  # type: ignore[no-any-return]

    def noting(self, decide: Decide, ran: list[tuple[str, Any]]) -> Decide:
        """``decide`` that also appends the statements it adds to ``ran`` (for ``batch``)."""

        def noted(results: list[list[Any]]) -> Statements | None:
            more = decide(results)
            if more:
                ran.extend(more)
            return more

        return noted

    @contextmanager
    def batch(self, statements: list[tuple[str, Any]]) -> Iterator[None]:
        """One span around a write transaction of ``statements`` (a list that may grow while it
        runs: the statements a write decides to add before its commit are appended to it)."""
        span = self.tracer.start_span("BATCH", kind=SpanKind.CLIENT, attributes=self.base)
        try:
            yield
        except BaseException as error:
            failed(span, error)
            raise
        finally:
            if len(statements) == 1:
                span.update_name(operation_name(statements[0][0]))
            span.set_attributes(
                {
                    # the conventions' separator for a batch of different statements
                    "db.query.text": "; ".join(sql for sql, _ in statements),
                    "db.operation.batch.size": len(statements),
                }
            )
            span.end()

    @contextmanager
    def one(self, sql: str) -> Iterator[None]:
        """One span around one statement run by the caller (asyncpg's ``fetch``)."""
        span = self.statement(sql)
        try:
            yield
        except BaseException as error:
            failed(span, error)
            raise
        finally:
            span.end()

    # SQLAlchemy's cursor events (``listen``)

    def _before(self, _conn: Any, _cursor: Any, statement: str, _parameters: Any, context: Any, _many: bool) -> None:
        if context is None or sampled_out():  # None: driver SQL shown by announce(), fetch_raw's
            return
        setattr(context, _SPAN_ATTRIBUTE, self.statement(statement))

    def _after(self, _conn: Any, _cursor: Any, _statement: str, _parameters: Any, context: Any, _many: bool) -> None:
        span = getattr(context, _SPAN_ATTRIBUTE, None)
        if span is not None:
            setattr(context, _SPAN_ATTRIBUTE, None)
            span.end()

    def _error(self, exception_context: Any) -> None:
        context = exception_context.execution_context
        span = getattr(context, _SPAN_ATTRIBUTE, None) if context is not None else None
        if span is not None:
            setattr(context, _SPAN_ATTRIBUTE, None)
            failed(span, exception_context.original_exception)
            span.end()

    def listen(self, sync_engine: Any) -> None:
        """Make spans for every statement SQLAlchemy runs on ``sync_engine``."""
        event.listen(sync_engine, "before_cursor_execute", self._before)
        event.listen(sync_engine, "after_cursor_execute", self._after)
        event.listen(sync_engine, "handle_error", self._error)


def failed(span: Span, error: BaseException) -> None:
    """Mark ``span`` failed by ``error``'s class only (module docstring: messages may quote values)."""
    span.set_status(Status(StatusCode.ERROR))
    span.set_attribute("error.type", f"{type(error).__module__}.{type(error).__qualname__}")


def trace_statements(db: Database, tracer: Tracer) -> SQLSpans:
    """Give ``db`` spans for every statement it runs, SQLAlchemy's and driver SQL; returns them."""
    url = make_url(db.url)
    system = "sqlite" if db.is_sqlite else "postgresql"
    base: dict[str, str | int] = {"db.system.name": system, "db.system": system}
    if not db.is_sqlite:
        if url.host:
            base["server.address"] = url.host
        base["server.port"] = url.port or 5432
        if url.database:
            base["db.namespace"] = url.database
    spans = SQLSpans(tracer, system, base)
    spans.listen(db.engine.sync_engine)
    db.sql_spans = spans
    return spans
