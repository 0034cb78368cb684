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

Operations that ``graph/execution/planned/`` covers are answered from planned SQL instead, and are the
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
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLOutputType,
    GraphQLSchema,
    OperationDefinitionNode,
    is_leaf_type,
)
from graphql.execution.values import VariableValues, get_argument_values
from strawberry.types.arguments import convert_arguments
from strawberry.types.field import StrawberryField

from graph.execution.futures import take_over

logger = logging.getLogger("conduit.compiler")


class Bailout(Exception):
    """Stop this compiled run; the ordinary executor answers instead (and produces any error).

    ``reason`` is a short fixed code, as for ``NotCompilable``.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason


class CompiledInfo:
    """What a resolver receives as ``info`` on the compiled path: only ``context``.

    Our resolvers read nothing else from ``info``; one that did would raise AttributeError,
    which bails out to the ordinary executor.
    """

    __slots__ = ("context",)

    def __init__(self, context: Any) -> None:
        self.context = context


# how a field gets its value (FieldPlan.kind)
TYPENAME, ATTRIBUTE, RESOLVER = 0, 1, 2


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
    """A compiled query: its root fields' plans, run by calling the resolvers directly."""

    schema: GraphQLSchema
    strawberry_schema: Any
    operation: OperationDefinitionNode
    fields: list[FieldPlan]

    async def execute(self, context: Any, variables: VariableValues) -> dict[str, Any]:
        """The response's ``data`` for the coerced ``variables``.

        Raises Bailout (or a resolver's error) for the ordinary executor to answer.
        """
        run = _Run(self, context, variables)
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
        if plan.definition is None or plan.node is None or plan.strawberry_field is None:
            raise Bailout("plan", f"{plan.key} has no field definition")
        try:
            raw = get_argument_values(plan.definition, plan.node, self.variables)
        except GraphQLError as error:
            raise Bailout("arguments", "arguments do not coerce") from error
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
            if plan.kind == TYPENAME:
                values.append([plan.typename] * len(objects))
                continue
            if plan.kind == ATTRIBUTE:
                name = plan.attribute
                values.append([getattr(obj, name) for obj in objects])
                continue
            kwargs = self.kwargs(plan)
            if plan.info_parameter is not None:
                kwargs = {**kwargs, plan.info_parameter: self.info}
            resolver = plan.resolver
            if resolver is None:
                raise Bailout("plan", f"{plan.key} has no resolver")
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
                    raise Bailout("null", f"null in non-null field {plan.key}")
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
                    raise Bailout("serialize", f"{return_type} cannot serialize {value!r}")
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
                raise Bailout("not_a_list", f"{plan.key} is not a list")
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
        if plan.children is None:
            raise Bailout("plan", f"{plan.key} has no sub-selection")
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
                    take_over(yielded)  # another coroutine may await the same (cached DataLoader) future
                    yielded.add_done_callback(resume(index))
                else:
                    raise Bailout("awaitable", f"a resolver yielded {type(yielded).__name__}, not a future")
            if yielded_bare:
                await asyncio.sleep(0)
    finally:
        for index in unfinished:
            coroutines[index].close()
    return results
