"""A planned operation: its root fields' statements run together, and ``plan_operation`` that plans one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from graphql import FieldNode, FragmentDefinitionNode, GraphQLObjectType, OperationDefinitionNode, OperationType
from graphql.execution.values import VariableValues

from db.dialect import DriverDialect
from db.engine import CommitOutcomeUnknown
from graph.execution.planned.errors import NotPlanned, WriteCommitted
from graph.execution.planned.root import RootPlan
from graph.execution.planned.selection import Planner
from graph.execution.planned.writes import AddCommentPlan

if TYPE_CHECKING:
    from graph.context import Context

__all__ = ["OperationSql", "plan_operation"]


@dataclass(eq=False)
class OperationSql:
    """A planned operation: its root fields in response order (``None`` for ``__typename``).

    A mutation has exactly one root field besides ``__typename`` (``writes``).
    """

    roots: list[tuple[str, Any, RootPlan | None]]
    root_type: str = "Query"
    writes: bool = False

    async def execute(self, context: Context, variables: VariableValues) -> dict[str, Any]:
        """The response's ``data``; raises NotPlanned when the arguments are outside the plan.

        A mutation raises NotPlanned only before anything is written, and ``WriteCommitted``
        for a failure after its commit.
        """
        if self.writes:
            return await self._write(context, variables)
        db, viewer_id = context.app.db, context.viewer_id
        prepared = [
            (key, root.prepare(definition, variables, viewer_id) if root is not None else None)
            for key, definition, root in self.roots
        ]
        statements = [s for _key, p in prepared if p is not None for s in p.statements]
        results = await db.fetch_raw(statements) if statements else []
        data: dict[str, Any] = {}
        start = 0
        for key, p in prepared:
            if p is None:
                data[key] = self.root_type
                continue
            data[key] = p.finish(results[start : start + len(p.statements)])
            start += len(p.statements)
        return data

    async def _write(self, context: Context, variables: VariableValues) -> dict[str, Any]:
        broker = context.app.broker
        ((key, definition, root),) = [r for r in self.roots if r[2] is not None]
        if not isinstance(root, AddCommentPlan):  # plan_operation plans no other write
            raise NotPlanned(f"{type(root).__name__} does not write")
        prepared = root.prepare_write(definition, variables, context.viewer_id, broker)
        try:
            results = await context.app.db.write(prepared.statements, prepared.decide)
        except CommitOutcomeUnknown as error:
            raise WriteCommitted("the commit's outcome is unknown: not run again", root.node) from error
        if results is None:
            raise NotPlanned("nothing to write: the ordinary executor reports why")
        try:
            if not broker.transactional:
                for event in prepared.events(results):
                    await broker.publish(event)
            value = prepared.finish(results)
        except Exception as error:
            raise WriteCommitted("a committed mutation failed afterwards", root.node) from error
        return {k: value if k == key else self.root_type for k, _d, _r in self.roots}


def plan_operation(
    schema: Any,
    operation: OperationDefinitionNode,
    fragments: dict[str, FragmentDefinitionNode],
    is_sqlite: bool,
    collect: Callable[[GraphQLObjectType, list[Any], dict[str, FragmentDefinitionNode]], dict[str, list[FieldNode]]],
) -> OperationSql:
    """Plan the query or mutation ``operation`` (already validated); raises NotPlanned."""
    planner = Planner(schema, DriverDialect(is_sqlite), lambda t, sets: collect(t, sets, fragments))
    writes = operation.operation is OperationType.MUTATION
    if operation.operation not in (OperationType.QUERY, OperationType.MUTATION):
        raise NotPlanned(f"{operation.operation.value} operations are not planned")
    root_type = schema.get_root_type(operation.operation)
    roots: list[tuple[str, Any, RootPlan | None]] = []
    for key, nodes in collect(root_type, [operation.selection_set], fragments).items():
        name = nodes[0].name.value
        if name == "__typename":
            roots.append((key, None, None))
            continue
        definition = root_type.fields[name]
        root: RootPlan
        if writes:
            if name != "addComment" or any(r is not None for _k, _d, r in roots):
                raise NotPlanned(f"Mutation.{name}, or more than one mutation")
            root = planner.add_comment(nodes[0], nodes)
        elif name == "articles":
            root = planner.articles(nodes[0], nodes)
        elif name == "article":
            root = planner.article_root(nodes[0], nodes)
        else:
            raise NotPlanned(f"Query.{name}")
        roots.append((key, definition, root))
    planned = [plan for _key, _definition, plan in roots if plan is not None]
    if not planned:
        raise NotPlanned("nothing to plan")
    namespace = planner.source.compile()
    for plan in planned:
        plan.bind(namespace)
    return OperationSql(roots, root_type.name, writes)
