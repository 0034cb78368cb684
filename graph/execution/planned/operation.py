"""A planned operation: ``plan_operation`` plans one, ``PlannedOperation`` runs it.

A query's root fields start their statements in one ``Execution`` (the first batch holds
every root field's), and are shaped after the last batch. A mutation is ``addComment``
(``writes.AddCommentPlan``), one short transaction. ``@skip``/``@include`` with variables
change the selection, so a ``PlannedOperation`` keeps one plan per set of their values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from graphql import (
    DirectiveNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLNonNull,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    VariableNode,
    Visitor,
    located_error,
    visit,
)
from graphql.execution.values import VariableValues

from db.engine import CommitOutcomeUnknown
from db.models import Role
from db.response_store import FLUSH
from graph.context import changed
from graph.execution.planned.errors import NotPlanned, WriteCommitted
from graph.execution.planned.planner import Level, Planner
from graph.execution.planned.roots import (
    NODE_TYPES,
    ArticleList,
    Lookup,
    ManyNodes,
    OneNode,
    RateLimitRoot,
    Root,
    TagList,
    UserList,
)
from graph.execution.planned.runs import Execution, FieldError
from graph.execution.planned.writes import AddCommentPlan
from graph.permissions import STAFF_ROLES

if TYPE_CHECKING:
    from graph.context import Context

__all__ = [
    "PLAN_BYTES_BASE",
    "PLAN_BYTES_PER_FIELD",
    "DirectiveVariables",
    "OperationSql",
    "PlannedOperation",
    "plan_operation",
    "selection_weight",
]


@dataclass(eq=False)
class OperationSql:
    """One plan of an operation: its root fields in response order (``None`` for ``__typename``)."""

    roots: list[tuple[str, Root | AddCommentPlan | None]]
    root_type: str = "Query"
    write: AddCommentPlan | None = None

    @property
    def writes(self) -> bool:
        """Whether this is a mutation (it runs at most once, and never falls back after its commit)."""
        return self.write is not None

    async def execute(
        self, context: Context, variables: VariableValues
    ) -> tuple[dict[str, Any] | None, list[GraphQLError]]:
        """The response's ``data`` and errors; raises NotPlanned when the operation is outside the plan.

        Errors are the resolvers' for arguments they refuse (``runs.FieldError``), located and
        propagated as graphql-core does (GraphQL spec, 6.4.4 Handling Field Errors): the
        nearest nullable field becomes null, a root field here (``data`` itself for a non-null
        one). A root field's refusal is reported alone (the first in document order); below
        the roots, one error is reported this way: with more, their order depends on
        graphql-core's scheduling, and NotPlanned hands the operation to it. A mutation raises
        NotPlanned only before anything is written, and ``WriteCommitted`` for a failure
        after its commit.
        """
        if self.write is not None:
            await context.confirm_viewer()  # nothing is written for a viewer not confirmed
            return await self._write(self.write, context, variables), []
        viewer = context.viewer
        execution = Execution(
            context.app.db,
            context.app.db.is_sqlite,
            variables,
            viewer.id if viewer is not None else None,
            viewer is not None and viewer.role is Role.ADMIN,
            context,
            staff=viewer is not None and viewer.role in STAFF_ROLES,
            check=viewer if context.viewer_unconfirmed else None,
        )
        finishers: list[tuple[str, Root | None, Any]] = []
        errors: list[FieldError] = []
        for key, root in self.roots:
            if not isinstance(root, Root):
                finishers.append((key, None, None))
                continue
            try:
                finishers.append((key, root, root.start(execution)))
            except FieldError as error:
                error.node, error.path = root.node, [key]
                errors.append(error)
                finishers.append((key, root, None))
                if not isinstance(root.definition.type, GraphQLNonNull):
                    raise NotPlanned("an argument error in a nullable root field") from None
        if errors:
            # Root fields' resolvers start in document order and refuse their arguments before
            # their first await: the first refusal of a non-null root field nulls ``data`` and
            # ends the operation, before any other field's error (seen in graphql-core 3.3).
            if not await _viewer_stands(context, execution):
                return await self.execute(context, variables)
            return None, [_located(errors[0])]
        await execution.run()
        if not await _viewer_stands(context, execution):
            return await self.execute(context, variables)  # again, as the viewer it is now
        errors = execution.errors
        if len(errors) > 1:
            raise NotPlanned("several errors")
        data: dict[str, Any] = {}
        for key, found, finish in finishers:
            if found is None:
                data[key] = self.root_type
                continue
            try:
                if finish is None:  # its arguments failed: the error is in ``errors``
                    raise errors[0]
                data[key] = finish()
            except FieldError:
                if isinstance(found.definition.type, GraphQLNonNull):
                    return None, [_located(error) for error in errors]
                data[key] = None
        return data, [_located(error) for error in errors]

    async def _write(self, root: AddCommentPlan, context: Context, variables: VariableValues) -> dict[str, Any]:
        broker = context.app.broker
        prepared = root.prepare_write(variables, context.viewer_id, broker)
        try:
            results = await context.app.db.write(prepared.statements, prepared.decide)
        except CommitOutcomeUnknown as error:
            changed((FLUSH,))  # it may have committed: what, this run cannot tell
            raise WriteCommitted("the commit's outcome is unknown: not run again", root.node) from error
        if results is None:
            raise NotPlanned("nothing to write: the ordinary executor reports why")
        changed(prepared.touched(results))
        try:
            if not broker.transactional:
                for event in prepared.events(results):
                    await broker.publish(event)
            value = prepared.finish(results)
        except Exception as error:
            raise WriteCommitted("a committed mutation failed afterwards", root.node) from error
        return {key: value if r is not None else self.root_type for key, r in self.roots}


async def _viewer_stands(context: Context, execution: Execution) -> bool:
    """Whether ``execution``'s answer stands for the viewer it ran as; false when that viewer changed.

    An unconfirmed viewer (``Context.viewer_unconfirmed``) was checked by the run's first
    statement (``Execution.confirmed``); when that statement could not say (it had no row, or
    no statement carried the check) or said no, the viewer is checked now, on its own
    (``Context.confirm_viewer``, which raises ``AuthenticationFailed`` for a user gone or
    suspended).
    """
    if execution.check is None:
        return True
    if execution.confirmed:
        context.viewer_checked()
        return True
    return not await context.confirm_viewer()


def _located(error: FieldError) -> GraphQLError:
    # as graphql-core locates a resolver's error: the same message, extensions and original error
    return located_error(error.original, [error.node] if error.node is not None else None, error.path)


class DirectiveVariables(Visitor):
    """Collects the names of the variables ``@skip``/``@include`` (any directive) read, each once."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def enter_directive(self, node: DirectiveNode, *_args: Any) -> None:
        for argument in node.arguments or ():
            if isinstance(argument.value, VariableNode) and argument.value.name.value not in self.names:
                self.names.append(argument.value.name.value)


MAX_DIRECTIVE_PLANS = 4
"""Plans kept per operation for different values of its directives' variables."""
PLAN_BYTES_BASE = 32 * 1024
PLAN_BYTES_PER_FIELD = 10 * 1024
"""What a plan is charged in the ``plans`` cache: a base and an amount per field node of its
selection. Measured with tracemalloc (memory freed when plans are dropped, benchmark data):
Q1's plan 54 KiB, Q2's 90, P1's 33, a three-level query of 40 fields 230 (most of it
SQLAlchemy's aliases and their column collections, kept to compile further variants), plus up
to ``Variants.MAX_VARIANTS`` compiled texts of 2-4 KiB per statement."""


def selection_weight(nodes: list[Any], fragments: dict[str, FragmentDefinitionNode]) -> int:
    """The number of field nodes under ``nodes`` (fragments counted where spread, each once)."""
    counter = _FieldCounter(fragments)
    for node in nodes:
        visit(node, counter)
    return counter.count


class _FieldCounter(Visitor):
    def __init__(self, fragments: dict[str, FragmentDefinitionNode]) -> None:
        super().__init__()
        self.fragments = fragments
        self.seen: set[str] = set()
        self.count = 0

    def enter_field(self, *_args: Any) -> None:
        self.count += 1

    def enter_fragment_spread(self, node: Any, *_args: Any) -> None:
        name = node.name.value
        fragment = self.fragments.get(name)
        if fragment is not None and name not in self.seen:
            self.seen.add(name)
            visit(fragment.selection_set, self)


@dataclass(eq=False)
class PlannedOperation:
    """An operation's plans, one per set of values of the variables its directives read."""

    schema: GraphQLSchema
    operation: OperationDefinitionNode
    fragments: dict[str, FragmentDefinitionNode]
    is_sqlite: bool
    directive_variables: tuple[str, ...]
    plans: dict[tuple[Any, ...], OperationSql | NotPlanned] = field(default_factory=dict)

    @property
    def writes(self) -> bool:
        """Whether the operation is a mutation."""
        return self.operation.operation is OperationType.MUTATION

    def weight(self) -> int:
        """Bytes the plan cache charges for this operation's plans (``PLAN_BYTES_PER_FIELD``)."""
        plans = min(2 ** len(self.directive_variables), MAX_DIRECTIVE_PLANS)
        fields = selection_weight([self.operation], self.fragments)
        return int(plans * (PLAN_BYTES_BASE + PLAN_BYTES_PER_FIELD * fields))

    def plan(self, variables: VariableValues | None) -> OperationSql:
        """The plan for these variables' directive values; NotPlanned (remembered) if it has none."""
        key = tuple(variables.coerced.get(name) for name in self.directive_variables) if variables else ()
        found = self.plans.get(key)
        if found is None:
            try:
                found = _plan(self.schema, self.operation, self.fragments, self.is_sqlite, variables)
            except NotPlanned as refusal:
                found = refusal
            if len(self.plans) < MAX_DIRECTIVE_PLANS:  # more combinations are planned each time
                self.plans[key] = found
        if isinstance(found, NotPlanned):
            raise found
        return found

    async def execute(
        self, context: Context, variables: VariableValues
    ) -> tuple[dict[str, Any] | None, list[GraphQLError]]:
        """The response's ``data`` and errors (``OperationSql.execute``); NotPlanned when not covered."""
        return await self.plan(variables).execute(context, variables)


def plan_operation(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: dict[str, FragmentDefinitionNode],
    is_sqlite: bool,
) -> PlannedOperation:
    """Plan the query or mutation ``operation`` (validated); raises NotPlanned when it is not covered.

    Without directives on variables the plan is made here; with them, on first use of each
    set of their values (``PlannedOperation.plan``).
    """
    if operation.operation not in (OperationType.QUERY, OperationType.MUTATION):
        raise NotPlanned(f"{operation.operation.value} operations are not planned")
    finder = DirectiveVariables()
    visit(operation, finder)
    for fragment in fragments.values():
        visit(fragment, finder)
    planned = PlannedOperation(schema, operation, fragments, is_sqlite, tuple(finder.names))
    if not finder.names:
        planned.plan(None)  # raises NotPlanned now: a refusal known at compile time
    return planned


def _plan(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: dict[str, FragmentDefinitionNode],
    is_sqlite: bool,
    variables: VariableValues | None,
) -> OperationSql:
    planner = Planner(schema, fragments, variables, is_sqlite)
    root_type = schema.get_root_type(operation.operation)
    if root_type is None:
        raise NotPlanned(f"the schema has no {operation.operation.value} type")
    roots: list[tuple[str, Root | AddCommentPlan | None]] = []
    write: AddCommentPlan | None = None
    for key, nodes in planner.collect(root_type.name, [operation.selection_set]).items():
        name = nodes[0].name.value
        if name == "__typename":
            roots.append((key, None))
            continue
        if name.startswith("__"):
            raise NotPlanned("introspection")
        definition = root_type.fields[name]
        if operation.operation is OperationType.MUTATION:
            if name != "addComment" or write is not None:
                raise NotPlanned(f"Mutation.{name}, or more than one mutation")
            write = AddCommentPlan(nodes[0], definition, planner.comment_payload(nodes, key), is_sqlite)
            roots.append((key, write))
            continue
        roots.append((key, _root(planner, key, name, nodes, definition, is_sqlite)))
    # only ``__typename``, or every field skipped: no statement, the answer is known here
    levels: list[Level] = [level for _key, root in roots if root is not None for level in root.levels()]
    planner.bind(levels)
    return OperationSql(roots, root_type.name, write)


def _root(planner: Planner, key: str, name: str, nodes: list[FieldNode], definition: Any, is_sqlite: bool) -> Root:
    node = nodes[0]
    if name in ("articles", "feed"):
        level = planner.level("Article")
        level.listed = True
        counts = planner.connection(level, "ArticleConnection", nodes)
        return ArticleList(node, definition, level, name == "feed", counts, is_sqlite)
    if name == "users":
        level = planner.level("User")
        level.listed = True
        counts = planner.connection(level, "UserConnection", nodes)
        return UserList(node, definition, level, counts, is_sqlite)
    if name in ("article", "user", "viewer"):
        type_name, column, argument = {
            "article": ("Article", "slug", "slug"),
            "user": ("User", "username", "username"),
            "viewer": ("User", "id", None),
        }[name]
        return Lookup(node, definition, planner.lookup(type_name, nodes, [key]), column, argument, is_sqlite)
    if name in ("node", "nodes"):
        lookups = {
            type_name: Lookup(
                node, definition, planner.lookup(type_name, nodes, [key], listed=name == "nodes"), "id", None, is_sqlite
            )
            for type_name in NODE_TYPES
        }
        return (OneNode if name == "node" else ManyNodes)(node, definition, lookups)
    if name in ("tags", "popularTags"):
        fields = None
        if name == "popularTags":
            fields = [(key, field_name) for key, field_name, _m in planner.fields("TagCount", nodes)]
        return TagList(node, definition, fields, is_sqlite)
    if name == "rateLimit":
        fields = [(key, field_name) for key, field_name, _m in planner.fields("RateLimit", nodes)]
        return RateLimitRoot(node, definition, fields)
    raise NotPlanned(f"Query.{name}")
