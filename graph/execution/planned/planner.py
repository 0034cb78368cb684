"""The planner proper: from a validated selection and ``MAPPING``, levels of statements and their shaping code.

A ``Level`` is one statement's worth of an operation: rows of one object type, with every
object reached through ``ToOne`` fields joined in, and the columns the selection asks for
(and only those). Each ``ToMany`` field (a nested connection) below it is a child ``Level``,
run once for all the parent rows of its parent (one statement per connection level, as
GraphQL's DataLoader pattern batches, but planned ahead). The shaping code is generated
once per plan: one function per level that turns its rows, and its children's through
``_s`` (accessors built at run time), into the response's dicts.

Selections are collected as the GraphQL spec's CollectFields does (section 6.3.2), with
``@skip``/``@include`` evaluated against the operation's variables, so a plan holds for one
set of those directives' values (``operation.PlannedOperation`` keeps one per set).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLIncludeDirective,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLSkipDirective,
    InlineFragmentNode,
    SelectionSetNode,
)
from graphql.execution.values import VariableValues, get_directive_values

from graph.execution.planned.errors import NotPlanned
from graph.execution.planned.mapping import MAPPING, ObjectMapping, ToMany, ToOne, Value
from graph.execution.planned.shaping import Source, entry, literal, name_literal

__all__ = ["Child", "Column", "Level", "Planner"]

CONNECTION_PARAMETERS = "_rows, _first, _has_previous, _total, _s, _cur"
"""A connection's shaping function: a page plus one of rows, ``first``, whether a cursor was
given, the total (``None`` unless ``totalCount`` is selected), the children's accessors and
the cursor of a row."""
OBJECT_PARAMETERS = "r, _s"
"""An object's shaping function: its row and its children's accessors."""


@dataclass(eq=False)
class Column:
    """One column of a level's select list: ``build(is_sqlite)``; ``anonymous``: its constant without a viewer."""

    build: Callable[[bool], sa.ColumnElement[Any]]
    anonymous: Any = None


@dataclass(eq=False)
class Child:
    """A connection below a level: its field, its rows' level and where the parent row holds its key and total."""

    relation: ToMany
    level: Level
    node: FieldNode
    definition: GraphQLField
    parent_index: int
    count_index: int | None
    path: list[str]
    in_list: bool
    parent_alias: Any = None  # the parent object's alias, which ``relation.parent_key`` reads
    variants: Any = None  # its statements, compiled on first use (runs.child_statements)

    @property
    def name(self) -> str:
        """Unique in the operation (its level's alias): the prefix of its parameters when embedded."""
        return str(self.level.alias.name)


@dataclass(eq=False)
class Level:
    """One statement: rows of ``mapping``'s objects read through ``alias`` (see the module docstring).

    ``source`` is the FROM clause before the joins (the alias; a page's statement puts its
    keys' subquery before it); ``joins`` the ``ToOne`` objects joined in, in order.
    """

    mapping: ObjectMapping
    alias: Any
    source: Any
    listed: bool = False  # its rows are items of a list (a connection's, ``nodes``')
    # (alias, ON clause, outer join?)
    joins: list[tuple[Any, sa.ColumnElement[bool], bool]] = field(default_factory=list)
    columns: list[Column] = field(default_factory=list)
    keys: dict[str, int] = field(default_factory=dict)
    children: list[Child] = field(default_factory=list)
    shape_name: str = ""
    shape: Callable[..., Any] = field(init=False, repr=False)

    def add(self, key: str, build: Callable[[bool], sa.ColumnElement[Any]], anonymous: Any = None) -> int:
        """The position of the column ``key`` in this level's rows, adding it if new."""
        found = self.keys.get(key)
        if found is None:
            found = self.keys[key] = len(self.columns)
            self.columns.append(Column(build, anonymous))
        return found

    def from_clause(self, source: Any = None) -> Any:
        """The FROM clause: the source (``self.source`` by default) with every joined object."""
        joined = self.source if source is None else source
        for alias, on, outer in self.joins:
            joined = joined.join(alias, on, isouter=outer)
        return joined

    def embeds(self, is_sqlite: bool) -> bool:
        """Whether the connections below are read inside this level's statement (on PostgreSQL; ``runs.selected``).

        On PostgreSQL every statement is a round trip over a socket, and a correlated subquery
        per connection (its page as an array of rows) saves one per connection level; SQLite
        runs statements in process, where separate ones cost nothing more.
        """
        return not is_sqlite and bool(self.children)

    def width(self, is_sqlite: bool) -> int:
        """The columns before the page's keys in this level's rows: its own, then one per embedded connection."""
        return len(self.columns) + (len(self.children) if self.embeds(is_sqlite) else 0)

    def select_list(self, is_sqlite: bool, signed_in: bool) -> list[sa.ColumnElement[Any]]:
        """The columns, labelled ``c0``, ``c1``, ...; a viewer's column is a constant when anonymous."""
        out: list[sa.ColumnElement[Any]] = []
        for index, column in enumerate(self.columns):
            if column.anonymous is not None and not signed_in:
                expression: sa.ColumnElement[Any] = sa.true() if column.anonymous else sa.false()
            else:
                expression = column.build(is_sqlite)
            out.append(expression.label(f"c{index}"))
        return out

    def levels(self) -> Iterator[Level]:
        """This level and every level below it."""
        yield self
        for child in self.children:
            yield from child.level.levels()


class Planner:
    """Compiles the selections of one operation into ``Level`` s and shaping source."""

    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDefinitionNode],
        variables: VariableValues | None,
        is_sqlite: bool,
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.source = Source(is_sqlite)
        self.aliases = 0

    # -- selections -----------------------------------------------------------------------

    def collect(self, type_name: str, selection_sets: list[SelectionSetNode]) -> dict[str, list[FieldNode]]:
        """Fields by response key, in document order, through fragments that apply to ``type_name``."""
        object_type = self.schema.type_map[type_name]
        if not isinstance(object_type, GraphQLObjectType):
            raise NotPlanned(f"{type_name} is not an object type")
        interfaces = {interface.name for interface in object_type.interfaces}
        fields: dict[str, list[FieldNode]] = {}
        seen: set[str] = set()

        def applies(condition: Any) -> bool:
            return condition is None or condition.name.value == type_name or condition.name.value in interfaces

        def walk(selection_set: SelectionSetNode) -> None:
            for selection in selection_set.selections:
                if not self.included(selection):
                    continue
                if isinstance(selection, FieldNode):
                    key = selection.alias.value if selection.alias else selection.name.value
                    fields.setdefault(key, []).append(selection)
                elif isinstance(selection, InlineFragmentNode):
                    if applies(selection.type_condition):
                        walk(selection.selection_set)
                elif isinstance(selection, FragmentSpreadNode):
                    name = selection.name.value
                    fragment = self.fragments.get(name)
                    if name in seen or fragment is None:
                        continue
                    seen.add(name)
                    if applies(fragment.type_condition):
                        walk(fragment.selection_set)

        for selection_set in selection_sets:
            walk(selection_set)
        return fields

    def included(self, node: Any) -> bool:
        """Whether ``@skip``/``@include`` keep ``node`` (GraphQL spec, 6.3.2 CollectFields, step 2.b)."""
        if not node.directives:
            return True
        skip = get_directive_values(GraphQLSkipDirective, node, self.variables)
        if skip is not None and skip.get("if") is True:
            return False
        include = get_directive_values(GraphQLIncludeDirective, node, self.variables)
        return not (include is not None and include.get("if") is False)

    def fields(self, type_name: str, nodes: list[FieldNode]) -> Iterator[tuple[str, str, list[FieldNode]]]:
        """``(response key, field name, nodes)`` of the merged sub-selections of ``nodes``."""
        selection_sets = [node.selection_set for node in nodes if node.selection_set is not None]
        for key, merged in self.collect(type_name, selection_sets).items():
            yield key, merged[0].name.value, merged

    def alias(self, mapping: ObjectMapping) -> Any:
        """A fresh alias of ``mapping``'s table (``t0``, ``t1``, ... across the operation)."""
        self.aliases += 1
        return mapping.table.alias(f"t{self.aliases}")

    # -- objects --------------------------------------------------------------------------

    def level(self, type_name: str, alias: Any | None = None, source: Any | None = None) -> Level:
        """A new level reading ``type_name`` objects through ``alias`` (a fresh one by default)."""
        mapping = MAPPING[type_name]
        alias = self.alias(mapping) if alias is None else alias
        return Level(mapping, alias, alias if source is None else source)

    def object(self, level: Level, mapping: ObjectMapping, alias: Any, nodes: list[FieldNode], path: list[str]) -> str:
        """A dict expression for the object of ``mapping`` read through ``alias`` from row ``r`` of ``level``.

        ``path``: the object's response path where it has no list index (for errors).
        """
        out = []
        for key, name, merged in self.fields(mapping.name, nodes):
            if name == "__typename":
                value = name_literal(mapping.name)
            else:
                value = self.field(level, mapping, alias, name, merged, [*path, key])
            out.append(entry(key, value))
        return literal(out)

    def field(
        self, level: Level, mapping: ObjectMapping, alias: Any, name: str, nodes: list[FieldNode], path: list[str]
    ) -> str:
        """The expression of one field of an object (see ``object``)."""
        found = mapping.fields.get(name)
        if found is None:
            raise NotPlanned(f"{mapping.name}.{name}")
        if isinstance(found, Value):
            sql = found.sql
            index = level.add(f"{alias.name}.{name}", lambda is_sqlite: sql(alias, is_sqlite), found.anonymous)
            return f"{found.write}(r[{index}])" if found.write else f"r[{index}]"
        if isinstance(found, ToOne):
            target = MAPPING[found.target]
            joined = self.alias(target)
            level.joins.append((joined, found.on(alias, joined), found.nullable))
            expression = self.object(level, target, joined, nodes, path)
            if not found.nullable:
                return expression
            # an outer join's object is missing when its (primary key) id is null
            present = level.add(f"{joined.name}.present", lambda _s: joined.c.id)
            return f"(None if r[{present}] is None else {expression})"
        return self.nested(level, mapping, alias, found, nodes, path)

    def nested(
        self,
        level: Level,
        mapping: ObjectMapping,
        alias: Any,
        relation: ToMany,
        nodes: list[FieldNode],
        path: list[str],
    ) -> str:
        """A connection below an object: a child level, and the call of its accessor."""
        object_type = self.schema.type_map[mapping.name]
        if not isinstance(object_type, GraphQLObjectType):
            raise NotPlanned(f"{mapping.name} is not an object type")
        definition = object_type.fields[nodes[0].name.value]
        target = MAPPING[relation.target]
        target_alias = self.alias(target)
        child = Level(target, target_alias, target_alias, listed=True)
        counts = self.connection(child, self.connection_type(definition), nodes)
        parent_key = relation.parent_key
        parent_index = level.add(f"{alias.name}.{nodes[0].name.value}.key", lambda _s: parent_key(alias))
        count_index = None
        if counts:
            count = relation.count
            count_index = level.add(f"{alias.name}.{nodes[0].name.value}.count", lambda _s: count(alias))
        level.children.append(
            Child(relation, child, nodes[0], definition, parent_index, count_index, path, level.listed, alias)
        )
        total = f"r[{count_index}]" if count_index is not None else "None"
        return f"_s[{len(level.children) - 1}](r[{parent_index}], {total})"

    def connection_type(self, definition: GraphQLField) -> str:
        """The name of a connection field's type (``ArticleConnection``)."""
        inner = definition.type
        while hasattr(inner, "of_type"):
            inner = inner.of_type
        return str(inner.name)

    def connection(self, level: Level, type_name: str, nodes: list[FieldNode]) -> bool:
        """Generate ``level``'s connection shaping function; whether ``totalCount`` is selected."""
        mapping = level.mapping
        out: list[str] = []
        counts = False
        cursors = False  # whether any cursor is selected: encoding them is most of the shaping
        for key, name, merged in self.fields(type_name, nodes):
            if name == "__typename":
                value = name_literal(type_name)
            elif name == "totalCount":
                value, counts = "_total", True
            elif name == "nodes":
                value = f"[{self.object(level, mapping, level.alias, merged, [])} for r in _page]"
            elif name == "edges":
                edge_type = type_name.replace("Connection", "Edge")
                edge: list[str] = []
                for edge_key, edge_name, edge_nodes in self.fields(edge_type, merged):
                    if edge_name == "__typename":
                        edge.append(entry(edge_key, name_literal(edge_type)))
                    elif edge_name == "cursor":
                        edge.append(entry(edge_key, "c"))
                        cursors = True
                    elif edge_name == "node":
                        edge.append(entry(edge_key, self.object(level, mapping, level.alias, edge_nodes, [])))
                    else:
                        raise NotPlanned(f"{edge_type}.{edge_name}")
                value = (
                    f"[{literal(edge)} for r, c in zip(_page, _cursors)]"
                    if cursors
                    else f"[{literal(edge)} for r in _page]"
                )
            elif name == "pageInfo":
                info = []
                for info_key, info_name, _merged in self.fields("PageInfo", merged):
                    info_value = {
                        "__typename": "'PageInfo'",
                        "hasNextPage": "len(_rows) > _first",
                        "hasPreviousPage": "_has_previous",
                        "startCursor": "(_cursors[0] if _cursors else None)",
                        "endCursor": "(_cursors[-1] if _cursors else None)",
                    }.get(info_name)
                    if info_value is None:
                        raise NotPlanned(f"PageInfo.{info_name}")
                    cursors = cursors or "_cursors" in info_value
                    info.append(entry(info_key, info_value))
                value = literal(info)
            else:
                raise NotPlanned(f"{type_name}.{name}")
            out.append(entry(key, value))
        body = ["_page = _rows[:_first]"]
        if cursors:
            body.append("_cursors = [_cur(r) for r in _page]")
        body.append(f"return {literal(out)}")
        level.shape_name = self.source.function(CONNECTION_PARAMETERS, body)
        return counts

    def lookup(self, type_name: str, nodes: list[FieldNode], path: list[str], *, listed: bool = False) -> Level:
        """A level of ``type_name`` objects read by key, shaped by one function (the field at ``path``).

        Its first column is the object's id (``nodes`` finds each row's object by it);
        ``listed``: its rows are items of a list (``nodes``).
        """
        level = self.level(type_name)
        level.listed = listed
        alias = level.alias
        level.add("pk", lambda _s: alias.c.id)
        expression = self.object(level, level.mapping, alias, nodes, path)
        level.shape_name = self.source.function(OBJECT_PARAMETERS, [f"return {expression}"])
        return level

    def comment_payload(self, nodes: list[FieldNode], key: str) -> Level:
        """``addComment``'s payload: a ``Comment`` level read by id; NotPlanned with a connection in it."""
        level = self.lookup("Comment", nodes, [key])
        if level.children:  # its statement runs inside the write's transaction, one level only
            raise NotPlanned("a connection in addComment's payload")
        return level

    def bind(self, levels: list[Level]) -> None:
        """Compile the generated source and give every level (and those below) its function."""
        namespace = self.source.compile()
        for root in levels:
            for level in root.levels():
                level.shape = namespace[level.shape_name]
