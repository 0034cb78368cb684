"""Planned execution: any validated operation over the schema as SQL, and generated code that shapes its rows.

Hasura and PostGraphile compile any query over their schema into SQL; this package does the
same for Conduit, from one declarative mapping of the object types onto the tables
(``mapping``: columns, joined objects, connections, counts, the viewer's flags, global IDs).
From the validated document, once per (document, operation, values of ``@skip``/``@include``):

- ``planner``: the selection collected as GraphQL's CollectFields does (fragments, inline
  fragments on ``Node``, aliases, ``__typename``, directives), split into levels of
  statements: objects reached through to-one fields joined in, one statement per
  connection level for all the parents of its rows (a page per parent; on PostgreSQL read
  inside the parent's statement instead, ``runs.embedded``), and the source of one shaping
  function per level (``shaping``: straight-line code, names checked);
- ``roots``: every ``Query`` field (``articles`` with every filter, ``search`` and
  ``orderBy``, ``feed``, ``article``, ``user``, ``viewer``, ``node``, ``nodes``, ``tags``,
  ``popularTags``, ``rateLimit``), ``writes``: ``addComment`` and its payload in one short
  transaction; ``payloads``: the payload of every other mutation, read by id once
  graphql-core has run the mutation's resolver;
- ``statements``: SQLAlchemy Core statements compiled once per dialect and variant (which
  filters, a cursor, a viewer, one parent or several) into the driver's SQL, cached with the
  plan, so a request binds values and runs text (``Database.fetch_raw``);
- ``runs``: one execution: root statements in a first batch, each connection level's in the
  next as the parents' rows arrive (on SQLite; on PostgreSQL, where every statement is a
  round trip, they come with the parents' rows, and a list's total with its page: one
  statement per root field), then shaping from the roots down.

Semantics are the resolvers' (``graph/queries.py``, whose SQL builders the roots share, and
``graph/types/``): the same orderings, cursors, counts, viewer flags and argument errors,
located and propagated as graphql-core does. ``tests/graph/test_planned.py`` and
``tests/graph/test_planned_coverage.py`` compare responses byte for byte with graphql-core's
on both engines; ``tests/graph/test_mapping.py`` checks the mapping against the schema.
What is not covered raises ``NotPlanned`` (when planning, or at run time before anything is
written) and graphql-core answers: introspection, the resolvers of mutations other than
``addComment`` (their payloads are planned), dry runs of ``rateLimit``, and runs with more
than one argument error below the roots or one inside a list.
"""

from __future__ import annotations

from graph.execution.planned.errors import NotPlanned, WriteCommitted
from graph.execution.planned.operation import OperationSql, PlannedOperation, plan_operation

__all__ = ["NotPlanned", "OperationSql", "PlannedOperation", "WriteCommitted", "plan_operation"]
