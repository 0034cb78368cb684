"""How the planner hands an operation back: not planned, or a planned write that already committed."""

from __future__ import annotations

from graphql import FieldNode

__all__ = ["NotPlanned", "WriteCommitted"]


class NotPlanned(Exception):
    """Planned SQL does not answer this: another executor must.

    ``plan_operation`` raises it when the operation selects something the planner does not
    cover (compile time); ``OperationSql.execute`` when this run's arguments are outside the
    plan (run time), always before anything is written. Which call raised it tells the two
    apart; the message says what was not covered.
    """


class WriteCommitted(Exception):
    """A planned mutation committed (or may have) and then failed: it must not run again by falling back.

    ``node`` is the mutation's root field, whose error the response reports.
    """

    def __init__(self, message: str, node: FieldNode) -> None:
        super().__init__(message)
        self.node = node
