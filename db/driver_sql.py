"""Driver SQL written by hand: the hot paths outside the planner (budget charge, addComment).

Plain SQL text with ``:name`` parameters, which ``DriverDialect.render`` turns into the
driver's placeholders for ``Database.fetch_raw`` and ``Database.write``. Planned queries
are not here: ``graph/execution/planned/`` builds them as SQLAlchemy Core statements from
its mapping and compiles them per dialect, and the viewer lookup is ``db.users.viewer_by_id``
(a Core statement, so that "suspended now" has one definition). Values always travel as
parameters.
"""

from __future__ import annotations

__all__ = ["CHARGE_BUDGET", "INSERT_COMMENT"]

CHARGE_BUDGET = (
    "INSERT INTO cost_budget (bucket, window_start, used) VALUES (:bucket, :window, :cost) "
    "ON CONFLICT (bucket, window_start) DO UPDATE SET used = cost_budget.used + excluded.used "
    "WHERE cost_budget.used + excluded.used <= :points RETURNING used"
)
"""Spend ``:cost`` of ``:bucket``'s ``:points`` in ``:window`` if they fit (``db/budget.py``): ``(used,)``
after the charge, or no row when it did not fit (nothing is changed then)."""

INSERT_COMMENT = (
    "INSERT INTO comment (body, article_id, author_id, created_at, updated_at) "
    "SELECT :body, a.id, :viewer, :now, :now FROM article a WHERE a.slug = :slug "
    "RETURNING id, article_id, body, created_at, updated_at"
)
"""A comment by ``:viewer`` on the article ``:slug``; no row when there is no such article."""
