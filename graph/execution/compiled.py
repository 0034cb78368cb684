"""Compiled execution: run a known, validated query without graphql-core's field-by-field executor.

graphql-core spends about 6 µs per field (``../shared/bench/ceiling.md``): building a resolve
info, a path, an awaitable check and a completion call for every field of every object. A
query's shape is fixed by its document, so most of that work can be done once. ``compile``
walks the validated operation against the schema once and keeps, per response key, what
to call: an attribute read, or the Strawberry resolver itself (the same Python function the
ordinary executor calls, so loaders, SQL and results are the same), and how to complete
the value (null checks, lists, scalar serializers, sub-selections). ``OperationPlan.execute``
then runs it level by level: every async resolver of a level is started before any is
awaited, so DataLoaders batch exactly as they do under the ordinary executor, and the
coroutines are driven directly rather than wrapped in tasks (the cost graphql-core pays
per awaitable).

Operations that ``graph/execution/planned.py`` covers are answered from planned SQL instead, and are the
only mutations compiled (a mutation is never run field by field here: it could not be handed
back half done). The compiled path only answers the happy path. It refuses at compile time
what it does not cover (other mutations, subscriptions, abstract types such as ``Node``, introspection,
``@skip``/``@include``, fields with extensions other than silent permissions, fragments on
other types), and it bails out at run time on anything unusual (variables that do not
coerce, a resolver error, a null in a non-null position, a refused permission). The caller
then runs the ordinary executor, which produces the response, errors included. Queries
have no side effects, so running the resolvers again is safe. A differential test
(``tests/graph/test_compiled.py``) checks that both executors give identical responses.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    get_operation_ast,
    is_leaf_type,
    parse,
    validate,
)
from graphql.execution.values import VariableValues, get_argument_values
from graphql.language import Visitor, visit
from strawberry.permission import PermissionExtension
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.arguments import convert_arguments
from strawberry.types.field import StrawberryField

from graph.admission.limits import coerced_variables
from graph.execution.planned import NotPlanned, OperationSql, WriteCommitted, plan_operation
from graph.execution.planned import NotPlanned as NotPlannable

logger = logging.getLogger("conduit.compiler")

__all__ = [
    "Bailout",
    "CompiledExecutor",
    "CompiledInfo",
    "CompiledStats",
    "NotCompilable",
    "OperationPlan",
    "PlanCache",
    "compile_operation",
]


class NotCompilable(Exception):
    """The operation uses something the compiled path does not cover; run it the ordinary way."""


class Bailout(Exception):
    """Stop this compiled run; the ordinary executor answers instead (and produces any error)."""


class CompiledInfo:
    """What a resolver receives as ``info`` on the compiled path: only ``context``.

    Our resolvers read nothing else from ``info``; one that did would raise AttributeError,
    which bails out to the ordinary executor.
    """

    __slots__ = ("context",)

    def __init__(self, context: Any) -> None:
        self.context = context


# how a field gets its value
_TYPENAME, _ATTRIBUTE, _RESOLVER = 0, 1, 2


@dataclass(eq=False)
class FieldPlan:
    """One response key of a selection on one object type."""

    key: str
    kind: int
    return_type: GraphQLOutputType
    typename: str = ""
    attribute: str = ""
    resolver: Callable[..., Any] | None = None
    is_async: bool = False
    pass_self: bool = False
    info_parameter: str | None = None
    definition: GraphQLField | None = None
    strawberry_field: StrawberryField | None = None
    node: FieldNode | None = None
    # the converted keyword arguments when they use no variable (computed once)
    static_kwargs: dict[str, Any] | None = None
    silent_permissions: list[Any] = field(default_factory=list)
    # sub-selection of the innermost object type, if the field is of an object type
    children: list[FieldPlan] | None = None


@dataclass(eq=False)
class OperationPlan:
    """A compiled query: its root fields and what coerces its variables."""

    schema: GraphQLSchema
    strawberry_schema: Any
    operation: OperationDefinitionNode
    fields: list[FieldPlan]
    stats: CompiledStats
    # the operation's SQL and shaping functions, when graph/execution/planned.py covers its selection
    sql: OperationSql | None = None

    async def execute(self, context: Any, variables: dict[str, Any] | None) -> dict[str, Any]:
        """The response's ``data`` for ``variables``; raises Bailout for the ordinary executor to answer."""
        coerced = coerced_variables(self.schema, self.operation, variables)
        if not isinstance(coerced, VariableValues):
            raise Bailout("variables do not coerce")
        if self.sql is not None:
            try:
                data = await self.sql.execute(context, coerced)
            except NotPlanned as refusal:
                if self.sql.writes:  # nothing was written: the ordinary executor runs the mutation
                    raise Bailout(str(refusal)) from refusal
                # arguments outside the plan: resolve field by field
            else:
                self.stats.planned += 1
                return data
        run = _Run(self, context, coerced)
        return (await run.selection(self.fields, [None]))[0]


class _Run:
    """The state of one execution of a plan."""

    __slots__ = ("config", "info", "plan", "scalar_registry", "variables")

    def __init__(self, plan: OperationPlan, context: Any, variables: VariableValues) -> None:
        self.plan = plan
        self.variables = variables
        self.info = CompiledInfo(context)
        self.config = plan.strawberry_schema.config
        self.scalar_registry = plan.strawberry_schema.schema_converter.scalar_registry

    def kwargs(self, plan: FieldPlan) -> dict[str, Any]:
        if plan.static_kwargs is not None:
            return plan.static_kwargs
        assert plan.definition is not None and plan.node is not None and plan.strawberry_field is not None
        try:
            raw = get_argument_values(plan.definition, plan.node, self.variables)
        except GraphQLError as error:
            raise Bailout("arguments do not coerce") from error
        return convert_arguments(
            raw, plan.strawberry_field.arguments, scalar_registry=self.scalar_registry, config=self.config
        )

    async def selection(self, plans: list[FieldPlan], objects: Sequence[Any]) -> list[dict[str, Any]]:
        """Resolve and complete ``plans`` on every object; one response dict per object, in key order."""
        results: list[dict[str, Any]] = [dict.fromkeys([p.key for p in plans]) for _ in objects]
        values: list[list[Any]] = []
        pending: list[Coroutine[Any, Any, Any]] = []
        pending_at: list[tuple[int, int]] = []
        for index, plan in enumerate(plans):
            if plan.kind == _TYPENAME:
                values.append([plan.typename] * len(objects))
                continue
            if plan.kind == _ATTRIBUTE:
                name = plan.attribute
                values.append([getattr(obj, name) for obj in objects])
                continue
            kwargs = self.kwargs(plan)
            if plan.info_parameter is not None:
                kwargs = {**kwargs, plan.info_parameter: self.info}
            resolver = plan.resolver
            assert resolver is not None
            column = [resolver(obj, **kwargs) if plan.pass_self else resolver(**kwargs) for obj in objects]
            if plan.is_async:
                pending.extend(column)
                pending_at.extend((index, row) for row in range(len(objects)))
            values.append(column)
        if pending:
            resolved = await gather(pending)
            for (index, row), value in zip(pending_at, resolved, strict=True):
                values[index][row] = value
        for index, plan in enumerate(plans):
            if plan.silent_permissions:
                values[index] = await self.permitted(plan, objects, values[index])
        completions: list[Coroutine[Any, Any, Any]] = []
        completed_at: list[int] = []
        for index, plan in enumerate(plans):
            completion = self.complete(plan, plan.return_type, values[index])
            if isinstance(completion, list):
                values[index] = completion
            else:
                completions.append(completion)
                completed_at.append(index)
        if completions:
            for index, column in zip(completed_at, await gather(completions), strict=True):
                values[index] = column
        for index, plan in enumerate(plans):
            key = plan.key
            for result, value in zip(results, values[index], strict=True):
                result[key] = value
        return results

    async def permitted(self, plan: FieldPlan, objects: Sequence[Any], column: list[Any]) -> list[Any]:
        """``column`` with ``None`` where a silent permission refuses (Strawberry's ``fail_silently``)."""
        kwargs = self.kwargs(plan)
        out = list(column)
        for row, obj in enumerate(objects):
            for permission in plan.silent_permissions:
                allowed = permission.has_permission(obj, self.info, **kwargs)
                if inspect.isawaitable(allowed):
                    allowed = await allowed
                if not allowed:
                    out[row] = None
                    break
        return out

    def complete(
        self, plan: FieldPlan, return_type: GraphQLOutputType, column: list[Any]
    ) -> list[Any] | Coroutine[Any, Any, list[Any]]:
        """Complete a column of values of ``return_type`` (GraphQL spec, CompleteValue)."""
        if isinstance(return_type, GraphQLNonNull):
            for value in column:
                if value is None:
                    raise Bailout(f"null in non-null field {plan.key}")
            return self.complete(plan, return_type.of_type, column)
        if isinstance(return_type, GraphQLList):
            return self.complete_list(plan, return_type, column)
        if is_leaf_type(return_type):
            serialize = return_type.serialize
            out: list[Any] = []
            for value in column:
                if value is None:
                    out.append(None)
                    continue
                serialized = serialize(value)
                if serialized is None:
                    raise Bailout(f"{return_type} cannot serialize {value!r}")
                out.append(serialized)
            return out
        return self.complete_objects(plan, column)

    async def complete_list(self, plan: FieldPlan, return_type: GraphQLList[Any], column: list[Any]) -> list[Any]:
        flat: list[Any] = []
        lengths: list[int] = []
        for value in column:
            if value is None:
                lengths.append(-1)
                continue
            if isinstance(value, str | bytes | dict) or not hasattr(value, "__iter__"):
                raise Bailout(f"{plan.key} is not a list")
            items = list(value)
            lengths.append(len(items))
            flat.extend(items)
        completed = self.complete(plan, return_type.of_type, flat)
        if inspect.iscoroutine(completed):
            completed = await completed
        out: list[Any] = []
        start = 0
        for length in lengths:
            if length < 0:
                out.append(None)
            else:
                out.append(completed[start : start + length])  # type: ignore[index]
                start += length
        return out

    async def complete_objects(self, plan: FieldPlan, column: list[Any]) -> list[Any]:
        present = [value for value in column if value is not None]
        assert plan.children is not None
        shaped = iter(await self.selection(plan.children, present)) if present else iter(())
        return [None if value is None else next(shaped) for value in column]


async def gather(coroutines: list[Coroutine[Any, Any, Any]]) -> list[Any]:
    """Run ``coroutines`` concurrently and return their results in order, without tasks.

    Each coroutine is stepped until it waits on a future (a DataLoader's, typically). Every
    coroutine that can go on is stepped before this waits again, so loads issued by all of
    them land in the same DataLoader batch, as with ``asyncio.gather``, at a fraction of its
    cost; each resumes as soon as its own future is done (a lock held by one and awaited by
    another cannot deadlock). The first exception propagates; the other coroutines are closed.
    """
    loop = asyncio.get_running_loop()
    results: list[Any] = [None] * len(coroutines)
    ready: list[int] = list(range(len(coroutines)))
    unfinished = set(ready)
    waiter: asyncio.Future[None] | None = None

    def resume(index: int) -> Callable[[Any], None]:
        def callback(_future: Any) -> None:
            ready.append(index)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

        return callback

    try:
        while unfinished:
            if not ready:
                waiter = loop.create_future()
                await waiter
                waiter = None
                continue
            batch = ready[:]
            ready.clear()
            yielded_bare = False
            for index in batch:
                try:
                    yielded = coroutines[index].send(None)
                except StopIteration as stop:
                    results[index] = stop.value
                    unfinished.discard(index)
                    continue
                if yielded is None:  # a bare yield (asyncio.sleep(0)): go on after one loop turn
                    ready.append(index)
                    yielded_bare = True
                elif asyncio.isfuture(yielded):
                    # What a Task does on receiving a future: another coroutine may await the
                    # same (cached DataLoader) future, which asyncio refuses while this is set.
                    yielded._asyncio_future_blocking = False
                    yielded.add_done_callback(resume(index))
                else:
                    raise Bailout(f"a resolver yielded {type(yielded).__name__}, not a future")
            if yielded_bare:
                await asyncio.sleep(0)
    finally:
        for index in unfinished:
            coroutines[index].close()
    return results


def compile_operation(
    strawberry_schema: Any,
    document: DocumentNode,
    operation_name: str | None,
    is_sqlite: bool | None = None,
    stats: CompiledStats | None = None,
) -> OperationPlan:
    """Compile the query ``operation_name`` of a validated ``document``; raises NotCompilable.

    With ``is_sqlite`` (the engine's flavour) the operation is also planned into SQL when
    ``graph/execution/planned.py`` covers its selection.
    """
    schema: GraphQLSchema = strawberry_schema._schema
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        raise NotCompilable("no such operation, or several and no name")
    if operation.operation not in (OperationType.QUERY, OperationType.MUTATION):
        raise NotCompilable(f"{operation.operation.value} operations are not compiled")
    if _uses_directives(document):
        raise NotCompilable("directives are not compiled")
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    if operation.operation is OperationType.MUTATION:
        # only planned mutations: a field-by-field run could not hand back a half-done write
        if is_sqlite is None:
            raise NotCompilable("mutations are compiled only when planned")
        try:
            sql = plan_operation(schema, operation, fragments, is_sqlite, _collect)
        except NotPlannable as refusal:
            raise NotCompilable(str(refusal)) from refusal
        return OperationPlan(schema, strawberry_schema, operation, [], stats or CompiledStats(), sql)
    assert schema.query_type is not None
    fields = _plan_selection(strawberry_schema, schema, schema.query_type, [operation.selection_set], fragments)
    plan = OperationPlan(schema, strawberry_schema, operation, fields, stats or CompiledStats())
    if is_sqlite is not None:
        try:
            plan.sql = plan_operation(schema, operation, fragments, is_sqlite, _collect)
        except NotPlannable as refusal:
            logger.debug("not planned: %s", refusal)
    return plan


class _DirectiveFinder(Visitor):
    found = False

    def enter_directive(self, *_args: Any) -> None:
        self.found = True


def _uses_directives(document: DocumentNode) -> bool:
    finder = _DirectiveFinder()
    visit(document, finder)
    return finder.found


def _collect(
    object_type: GraphQLObjectType,
    selection_sets: list[SelectionSetNode],
    fragments: dict[str, FragmentDefinitionNode],
) -> OrderedDict[str, list[FieldNode]]:
    """Fields by response key, in document order, through fragments (GraphQL spec, CollectFields)."""
    fields: OrderedDict[str, list[FieldNode]] = OrderedDict()
    seen_fragments: set[str] = set()

    def applies(type_condition: Any) -> bool:
        if type_condition is None:
            return True
        name = type_condition.name.value
        return name == object_type.name or any(i.name == name for i in object_type.interfaces)

    def walk(selection_set: SelectionSetNode) -> None:
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                key = selection.alias.value if selection.alias else selection.name.value
                fields.setdefault(key, []).append(selection)
            elif isinstance(selection, InlineFragmentNode):
                if not applies(selection.type_condition):
                    raise NotCompilable("a fragment on another type")
                walk(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name in seen_fragments:
                    continue
                seen_fragments.add(name)
                fragment = fragments.get(name)
                if fragment is None or not applies(fragment.type_condition):
                    raise NotCompilable("a fragment on another type")
                walk(fragment.selection_set)

    for selection_set in selection_sets:
        walk(selection_set)
    return fields


def _innermost(return_type: GraphQLOutputType) -> GraphQLOutputType:
    while isinstance(return_type, GraphQLNonNull | GraphQLList):
        return_type = return_type.of_type
    return return_type


def _plan_selection(
    strawberry_schema: Any,
    schema: GraphQLSchema,
    object_type: GraphQLObjectType,
    selection_sets: list[SelectionSetNode],
    fragments: dict[str, FragmentDefinitionNode],
) -> list[FieldPlan]:
    plans = []
    for key, nodes in _collect(object_type, selection_sets, fragments).items():
        name = nodes[0].name.value
        if name == "__typename":
            plans.append(FieldPlan(key, _TYPENAME, return_type=schema.type_map["String"], typename=object_type.name))  # type: ignore[arg-type]
            continue
        if name.startswith("__"):
            raise NotCompilable("introspection is not compiled")
        definition = object_type.fields.get(name)
        if definition is None:
            raise NotCompilable(f"no field {object_type.name}.{name}")
        plans.append(_plan_field(strawberry_schema, schema, key, definition, nodes, fragments))
    return plans


def _plan_field(
    strawberry_schema: Any,
    schema: GraphQLSchema,
    key: str,
    definition: GraphQLField,
    nodes: list[FieldNode],
    fragments: dict[str, FragmentDefinitionNode],
) -> FieldPlan:
    strawberry_field = (definition.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if not isinstance(strawberry_field, StrawberryField):
        raise NotCompilable(f"{key} is not a Strawberry field")
    plan = FieldPlan(key, _ATTRIBUTE, return_type=definition.type, definition=definition, node=nodes[0])
    plan.strawberry_field = strawberry_field
    for extension in strawberry_field.extensions:
        if isinstance(extension, PermissionExtension) and extension.fail_silently and not extension.return_empty_list:
            plan.silent_permissions.extend(extension.permissions)
        else:
            raise NotCompilable(f"{key} has a field extension")
    resolver = strawberry_field.base_resolver
    if resolver is None:
        if nodes[0].arguments:
            raise NotCompilable(f"{key} takes arguments but has no resolver")
        plan.attribute = strawberry_field.python_name
    else:
        if resolver.root_parameter is not None or resolver.parent_parameter is not None:
            raise NotCompilable(f"{key}'s resolver asks for root or parent")
        plan.kind = _RESOLVER
        if not inspect.isfunction(resolver.wrapped_func):
            raise NotCompilable(f"{key}'s resolver is not a plain function")
        plan.resolver = resolver.wrapped_func
        plan.is_async = resolver.is_async
        plan.pass_self = resolver.self_parameter is not None
        plan.info_parameter = resolver.info_parameter.name if resolver.info_parameter is not None else None
    if not _has_variables(nodes[0]):
        try:
            raw = get_argument_values(definition, nodes[0], None)
        except GraphQLError as error:
            raise NotCompilable("arguments do not coerce") from error
        plan.static_kwargs = convert_arguments(
            raw,
            strawberry_field.arguments,
            scalar_registry=strawberry_schema.schema_converter.scalar_registry,
            config=strawberry_schema.config,
        )
    inner = _innermost(definition.type)
    if isinstance(inner, GraphQLObjectType):
        selection_sets = [node.selection_set for node in nodes if node.selection_set is not None]
        plan.children = _plan_selection(strawberry_schema, schema, inner, selection_sets, fragments)
    elif not isinstance(inner, GraphQLLeafType):
        raise NotCompilable(f"{key} is of an abstract type")
    return plan


def _has_variables(node: FieldNode) -> bool:
    found = False

    class Finder(Visitor):
        def enter_variable(self, _node: VariableNode, *_args: Any) -> None:
            nonlocal found
            found = True

    for argument in node.arguments or ():
        visit(argument, Finder())
    return found


NOT_COMPILABLE: Any = object()


class PlanCache:
    """Compiled plans by (document text, operation name); ``NOT_COMPILABLE`` marks refusals.

    Bounded (least recently used out), like the parser and validation caches.
    """

    def __init__(self, maxsize: int = 1024) -> None:
        self.maxsize = maxsize
        self._plans: OrderedDict[tuple[str, str | None], Any] = OrderedDict()

    def get(self, key: tuple[str, str | None]) -> Any:
        """The plan, ``NOT_COMPILABLE``, or ``None`` when the key was never compiled."""
        plan = self._plans.get(key)
        if plan is not None:
            self._plans.move_to_end(key)
        return plan

    def put(self, key: tuple[str, str | None], plan: Any) -> None:
        """Remember ``plan`` (or ``NOT_COMPILABLE``) for ``key``."""
        self._plans[key] = plan
        self._plans.move_to_end(key)
        while len(self._plans) > self.maxsize:
            self._plans.popitem(last=False)


@dataclass
class CompiledStats:
    """Counters of the compiled path: answered (``planned``: of those, from planned SQL), handed
    back at run time, refused at compile time."""

    compiled: int = 0
    planned: int = 0
    bailouts: int = 0
    not_compilable: int = 0


class CompiledExecutor:
    """Answers queries from compiled plans; ``None`` means "use the ordinary executor".

    ``validation_rules`` and ``max_tokens`` are the ordinary pipeline's, so a document the
    ordinary executor would refuse is never compiled; ``check`` is awaited before every
    compiled execution with ``(document, operation name, variables, context)`` and returns False
    to hand the request to the ordinary executor (the cost limit, the cost budget), which then
    produces the error.
    """

    def __init__(
        self,
        strawberry_schema: Any,
        validation_rules: Sequence[Any],
        max_tokens: int,
        check: Callable[[DocumentNode, str | None, dict[str, Any], Any], Awaitable[bool]],
        cache_size: int = 1024,
        is_sqlite: bool | None = None,
    ) -> None:
        self.schema = strawberry_schema
        self.is_sqlite = is_sqlite
        self.rules = list(validation_rules)
        self.max_tokens = max_tokens
        self.check = check
        self.plans = PlanCache(cache_size)
        self.stats = CompiledStats()

    def plan_for(self, query: str, operation_name: str | None) -> tuple[DocumentNode, OperationPlan] | None:
        """The cached plan of ``query``, compiling it on first sight; ``None`` when not compilable."""
        key = (query, operation_name)
        cached = self.plans.get(key)
        if cached is None:
            cached = self._compile(query, operation_name)
            self.plans.put(key, cached)
        if cached is NOT_COMPILABLE:
            self.stats.not_compilable += 1
            return None
        return cached  # type: ignore[no-any-return]

    def _compile(self, query: str, operation_name: str | None) -> Any:
        try:
            document = parse(query, max_tokens=self.max_tokens)
        except GraphQLError:
            return NOT_COMPILABLE
        if validate(self.schema._schema, document, self.rules):
            return NOT_COMPILABLE
        try:
            return document, compile_operation(self.schema, document, operation_name, self.is_sqlite, self.stats)
        except NotCompilable:
            return NOT_COMPILABLE

    async def execute(
        self,
        query: str,
        operation_name: str | None,
        variables: dict[str, Any] | None,
        context: Any,
        *,
        mutations: bool = False,
    ) -> tuple[dict[str, Any] | None, list[GraphQLError] | None, str, str | None] | None:
        """``data``, ``errors``, the operation's type and name; ``None`` when the ordinary executor must answer.

        ``mutations``: whether a mutation may run (POST only); a mutation runs at most once, on
        whichever path: after its commit nothing falls back, and a failure is answered as the
        mutation field's error (unclassified: the caller gives it its code, as for any error).
        """
        found = self.plan_for(query, operation_name)
        if found is None:
            return None
        document, plan = found
        if plan.operation.operation is OperationType.MUTATION and not mutations:
            return None  # e.g. over GET: the ordinary executor refuses it, before any charge
        if not await self.check(document, operation_name, variables or {}, context):
            self.stats.bailouts += 1
            return None
        name = plan.operation.name.value if plan.operation.name is not None else None
        try:
            data = await plan.execute(context, variables)
        except WriteCommitted as committed:
            # The mutation happened (or may have): running it again would do it twice. Its
            # field's error, as the ordinary executor reports a resolver's (non-null: data null).
            cause = committed.__cause__ if isinstance(committed.__cause__, Exception) else committed
            key = committed.node.alias.value if committed.node.alias else committed.node.name.value
            error = GraphQLError(str(cause), nodes=[committed.node], path=[key], original_error=cause)
            self.stats.compiled += 1
            return None, [error], plan.operation.operation.value, name
        except Exception as error:  # Bailout or a resolver's error: the ordinary executor reports it
            logger.debug("compiled execution handed back: %s: %s", type(error).__name__, error)
            self.stats.bailouts += 1
            context.refresh()  # nothing cached by the abandoned run leaks into the ordinary one
            return None
        self.stats.compiled += 1
        return data, None, plan.operation.operation.value, name
