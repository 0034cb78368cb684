"""Planned execution: a query's SQL and a generated function that shapes its rows into ``data``.

The compiled path of ``graph/execution/compiled.py`` still calls a resolver per field per object and
builds a Strawberry object per row: on the home page that is about 80 coroutines, 40 objects
and a DataLoader round per level. For the operations a Conduit frontend sends most (the
article list, an article with its comments), the selection alone says which columns and
relations are needed, so this package plans them the way ``../shared/bench/floor.py`` is
written by hand:

- at compile time (``selection``), from the validated document: the columns each statement
  selects, and the source of one Python function per root field that turns rows into the
  response's dicts (``shaping``);
- at run time (``reads``, ``writes``, ``operation``): coerce the arguments, pick the statement
  variant (filters present, cursor, signed-in viewer), run every statement of the operation
  at once through ``Database.fetch_raw`` (driver SQL: inline on SQLite, one asyncpg
  connection on PostgreSQL, where an article's comments pages ride in the article's own
  statement), and shape.

What is covered (everything else raises ``NotPlanned`` at compile time, and the compiled
executor keeps its field-by-field plan for it):

- root fields ``articles`` (``first``, ``after``, ``tag``, ``author``; ``favoritedBy``,
  ``search`` or ``orderBy`` given at run time raise ``NotPlanned``, which hands the request to
  the field-by-field plan) and ``article(slug)``, plus ``__typename``;
- the mutation ``addComment`` alone (plus ``__typename``): one short transaction through
  ``Database.write``, refused with ``NotPlanned`` before any write when the ordinary executor
  must report an error (``writes.AddCommentPlan``);
- ``ArticleConnection``/``CommentConnection``: ``edges { cursor node }``, ``pageInfo``,
  ``totalCount``; ``Article``: its columns, ``tagList``, ``favorited``, ``author`` and (under
  ``article`` only) ``comments(first, after)``; ``User``: ``id username bio image following
  createdAt``; ``Comment``: ``id body createdAt updatedAt author``.

Semantics are the resolvers' (``graph/queries.py``, ``graph/types/``, ``graph/loaders``): the
same ordering, cursors, tag order, counts and viewer flags, which the differential test
(``tests/graph/test_compiled.py``) checks response by response against the ordinary executor.
Invalid arguments (``first`` out of range, a bad cursor) raise ``NotPlanned`` so that the
ordinary executor reports them.

Modules: ``errors`` (how an operation is handed back), ``statements`` (select lists and
statement variants), ``shaping`` (generated code), ``selection`` (the planner proper),
``root``/``reads``/``writes`` (root fields at run time) and ``operation`` (an operation's
fields together, and ``plan_operation``). The SQL text is ``db/driver_sql.py``'s, and what
differs between the engines in it ``db/dialect.py``'s ``DriverDialect``.
"""

from __future__ import annotations

from graph.execution.planned.errors import NotPlanned, WriteCommitted
from graph.execution.planned.operation import OperationSql, PlannedOperation, plan_operation

__all__ = ["NotPlanned", "OperationSql", "PlannedOperation", "WriteCommitted", "plan_operation"]
