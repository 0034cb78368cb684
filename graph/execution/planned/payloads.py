"""Mutation payloads from planned SQL: graphql-core runs the mutation, the planner reads what it returned.

A mutation's resolver is the one place its rules live (permissions, validation, one
transaction), so graphql-core runs it as for any operation the planner does not cover. What
the resolver returns is then an object of a mapped type with its primary key: the payload's
selection (``createArticle { ... author { ... } comments { ... } }``, ``login { user { ... } }``)
is planned as a lookup of that object by id and read in one statement per connection level,
where graphql-core would resolve it field by field through the DataLoaders. The object is read
after the resolver's commit, as the DataLoaders would read it.

``PlannedPayloads`` is the execution context graphql-core runs mutations with; it plans only
objects of the payload outside any list (the mutation field itself, or ``AuthPayload.user``)
and leaves everything else, and any payload it cannot answer alone (no row any more, several
argument errors, one inside a list), to graphql-core.
"""

from __future__ import annotations

from typing import Any

from graphql import (
    FieldNode,
    GraphQLObjectType,
    OperationType,
    located_error,
    visit,
)
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from db.models import Role
from graph.caches import PLANS
from graph.execution.planned.errors import NotPlanned
from graph.execution.planned.mapping import MAPPING
from graph.execution.planned.operation import (
    PLAN_BYTES_BASE,
    PLAN_BYTES_PER_FIELD,
    DirectiveVariables,
    selection_weight,
)
from graph.execution.planned.planner import Level, Planner
from graph.execution.planned.roots import Lookup
from graph.execution.planned.runs import Execution, FieldError
from graph.permissions import STAFF_ROLES

__all__ = ["PlannedPayloads"]


class PlannedPayloads(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context, completing a mutation's payload objects from planned SQL."""

    def complete_object_value(
        self,
        return_type: GraphQLObjectType,
        field_details_list: Any,
        info: Any,
        path: Any,
        result: Any,
        position_context: Any,
    ) -> Any:
        keys = path.as_list()
        pk = getattr(result, "pk", None)
        if (
            self.operation.operation is OperationType.MUTATION
            and return_type.name in MAPPING
            and isinstance(pk, int)
            and len(keys) <= 2
            and all(isinstance(key, str) for key in keys)
        ):
            lookup = self._lookup(return_type, [details.node for details in field_details_list], keys)
            if lookup is not None:
                return self._planned(
                    lookup, pk, info, (return_type, field_details_list, info, path, result, position_context)
                )
        return super().complete_object_value(return_type, field_details_list, info, path, result, position_context)

    def _lookup(self, return_type: GraphQLObjectType, nodes: list[FieldNode], keys: list[Any]) -> Lookup | None:
        finder = DirectiveVariables()
        for node in nodes:
            visit(node, finder)
        for fragment in self.fragment_definitions.values():
            visit(fragment, finder)
        coerced = self.variable_values.coerced if self.variable_values is not None else {}
        context = self.context_value
        # in the app's plan cache, charged like an operation's plan: ("payload", id of the field
        # node, directive values); the entry keeps the node, so its id is not reused meanwhile
        plans = context.app.caches[PLANS]
        cache_key = ("payload", id(nodes[0]), tuple(coerced.get(name) for name in finder.names))
        found = plans.get(cache_key)
        if found is not None and found[0] is nodes[0]:
            return found[1]  # type: ignore[no-any-return]
        is_sqlite = context.app.db.is_sqlite
        planner = Planner(self.schema, dict(self.fragment_definitions), self.variable_values, is_sqlite)
        lookup: Lookup | None
        try:
            level = planner.lookup(return_type.name, nodes, keys)
            planner.bind([level])
            lookup = Lookup(nodes[0], None, level, "id", None, is_sqlite)  # type: ignore[arg-type]
        except NotPlanned:
            lookup = None
        fields = selection_weight(nodes, dict(self.fragment_definitions))
        plans.put(cache_key, (nodes[0], lookup), PLAN_BYTES_BASE + PLAN_BYTES_PER_FIELD * fields)
        return lookup

    async def _planned(self, lookup: Lookup, pk: int, info: Any, ordinary: tuple[Any, ...]) -> Any:
        context = info.context
        viewer = context.viewer
        db = context.app.db
        execution = Execution(
            db,
            db.is_sqlite,
            self.variable_values,
            viewer.id if viewer is not None else None,
            viewer is not None and viewer.role is Role.ADMIN,
            context,
            staff=viewer is not None and viewer.role in STAFF_ROLES,
        )
        try:
            run = lookup.run(execution, [pk])
            await execution.run()
            if run.rows and len(execution.errors) <= 1:
                return _shape(lookup.level, run.rows[0], run.accessors())
        except NotPlanned:
            pass
        # no row any more, or errors graphql-core orders by its scheduling: it completes the object
        completed = super().complete_object_value(*ordinary)
        return await completed if self.is_awaitable(completed) else completed


def _shape(level: Level, row: Any, accessors: list[Any]) -> Any:
    try:
        return level.shape(row, accessors)
    except FieldError as error:  # an argument a resolver below refuses: its error, where it would be
        raise located_error(error.original, [error.node] if error.node is not None else None, error.path) from None
