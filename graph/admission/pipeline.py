"""The admission pipeline: one ordered list of checks every GraphQL operation passes before it runs.

Every transport builds an ``Operation`` (HTTP GET and POST in ``graph/transport/http.py``, both
WebSocket protocols through ``ConduitSchema.stream``) and hands it to ``AdmissionPipeline.admit``.
Each step reads what the steps before it left on the operation (the parsed document, the
selected operation definition, the coerced variables) and either adds to it or refuses
the operation by raising ``Refused``. Only an admitted operation reaches an executor
(``graph/execution``), whichever one answers it: planned SQL or graphql-core.
So a check added to the list covers every path at once; ``graph/admission/__init__.py`` builds the
list in its order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import EllipsisType
from typing import TYPE_CHECKING, Any, TypeVar

from graphql import DocumentNode, GraphQLError, OperationDefinitionNode, OperationType
from graphql.execution.values import VariableValues
from opentelemetry.trace import Tracer

from graph.admission.keys import CACHE_ENTRY_OVERHEAD_BYTES, cache_encoding
from graph.cache_control import CachePolicy
from graph.observability.tracing import SPAN_OPTIONS, failed, sampled_out, step_name

if TYPE_CHECKING:
    from graph.caches import BoundedCache
    from graph.context import Context

T = TypeVar("T")


class Refused(Exception):
    """The operation is refused before execution: its response carries ``errors`` and no ``data``.

    ``status`` is the HTTP status when the refusal is one whatever the response's media type
    (405 for a mutation over GET, 400 for a malformed request); ``None`` leaves it to the
    GraphQL-over-HTTP rules (400 under ``application/graphql-response+json``, 200 under
    ``application/json``; GraphQL over HTTP, 6.4). ``headers`` go on the HTTP response.
    """

    def __init__(
        self,
        errors: list[GraphQLError],
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(errors[0].message if errors else "refused")
        self.errors = errors
        self.status = status
        self.headers = headers or {}


class StepOrderError(RuntimeError):
    """A step or an executor read what an earlier step should have set: the step list is out of order."""


@dataclass(eq=False, slots=True)
class Operation:
    """One GraphQL request as the admission steps see it, and as the executors receive it.

    Given by the transport: ``query`` (the document's text, already resolved from a persisted
    document id), ``operation_name``, ``variables`` (JSON values), ``extensions`` (the request's
    ``extensions`` entry), ``context`` and ``allowed`` (the operation types this transport
    serves). Set by the steps: ``document`` (parsed), ``validated``, ``definition`` (the
    selected operation), ``coerced`` (the variables coerced to the operation's types), ``dry_run`` (only the
    ``rateLimit`` fields run), ``cache_policy`` (how long and for whom its answer may be cached).
    """

    query: str | None
    operation_name: str | None
    variables: dict[str, Any] | None
    context: Context
    allowed: frozenset[OperationType]
    extensions: dict[str, Any] | None = None
    transport: str = "http"
    document: DocumentNode | None = None
    validated: bool = False
    definition: OperationDefinitionNode | None = None
    coerced: VariableValues | None = None
    dry_run: bool = False
    cache_policy: CachePolicy | None = None
    _variables_key: bytes | EllipsisType | None = ...

    def variables_key(self) -> bytes | None:
        """The variables as the cost and variables caches key them (``keys.cache_encoding``), computed once."""
        if self._variables_key is ...:
            self._variables_key = cache_encoding(self.query or "", self.variables)
        return self._variables_key

    def remembered(self, cache: BoundedCache[Any, Any], kind: str, compute: Callable[[], T]) -> T:
        """What ``compute`` works out from the document and the operation chosen (never ``None``), kept
        in ``cache`` under ``(kind, document text, operation name)``, charged the text's size, so it
        is worked out once per document (the cache policy, the budget's root fields, the response
        cache's tags: none depends on variables or the viewer)."""
        document = self.parsed
        body = document.loc.source.body if document.loc is not None else None
        key = (kind, body, self.operation_name) if body is not None else None
        found: T | None = cache.get(key) if key is not None else None
        if found is None:
            found = compute()
            if key is not None:
                cache.put(key, found, CACHE_ENTRY_OVERHEAD_BYTES + len(body or ""))
        return found

    @property
    def parsed(self) -> DocumentNode:
        """The parsed document; raises ``StepOrderError`` before the parse step ran."""
        if self.document is None:
            raise StepOrderError("the document is not parsed yet")
        return self.document

    @property
    def selected(self) -> OperationDefinitionNode:
        """The operation to run; raises ``StepOrderError`` before it was selected."""
        if self.definition is None:
            raise StepOrderError("no operation is selected yet")
        return self.definition

    @property
    def coerced_variables(self) -> VariableValues:
        """The coerced variables; raises ``StepOrderError`` before they were coerced."""
        if self.coerced is None:
            raise StepOrderError("the variables are not coerced yet")
        return self.coerced

    @property
    def kind(self) -> OperationType:
        """The selected operation's type."""
        return self.selected.operation

    @property
    def name(self) -> str | None:
        """The selected operation's name, ``None`` for an anonymous one."""
        definition = self.definition
        return definition.name.value if definition is not None and definition.name is not None else None


AdmissionStep = Callable[[Operation], Awaitable[None] | None]
"""One check: reads and fills in the ``Operation``, raises ``Refused``; sync or async."""


class AdmissionPipeline:
    """Runs ``steps`` in order on each operation (see the module docstring).

    ``steps`` is a list the app owns (``AppState.admission``): a step inserted into it covers
    HTTP and WebSocket operations, on every executor, from the next request on.
    """

    def __init__(self, steps: Sequence[AdmissionStep], tracer: Tracer | None = None) -> None:
        self.steps: list[AdmissionStep] = list(steps)
        self.tracer = tracer  # None: tracing is off; else one span per step (graph/observability/tracing.py)

    async def admit(self, operation: Operation) -> None:
        """Run every step on ``operation``; raises ``Refused`` from the first step that refuses it."""
        if self.tracer is not None and not sampled_out():
            await self._admit_traced(self.tracer, operation)
            return
        for step in self.steps:
            outcome = step(operation)
            if outcome is not None:  # an async step's coroutine; a sync step returns None
                await outcome

    async def _admit_traced(self, tracer: Tracer, operation: Operation) -> None:
        for step in self.steps:
            with tracer.start_as_current_span(step_name(step), **SPAN_OPTIONS) as span:
                try:
                    outcome = step(operation)
                    if outcome is not None:
                        await outcome
                except BaseException as error:
                    failed(span, error)
                    raise

    def names(self) -> list[str]:
        """The steps' names in order (for the docs and the tests)."""
        return [step_name(step) for step in self.steps]
