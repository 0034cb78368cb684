"""How the planner hands an operation back: not planned, or a planned write that already committed."""

from __future__ import annotations

from graphql import FieldNode

__all__ = ["NotPlannable", "NotPlanned", "WriteCommitted"]


class NotPlannable(Exception):
    """The operation selects something this planner does not cover (compile time)."""


class NotPlanned(Exception):
    """This run's arguments are outside the plan (run time); the field-by-field plan answers."""


class WriteCommitted(Exception):
    """A planned mutation committed (or may have) and then failed: it must not run again by falling back.

    ``node`` is the mutation's root field, whose error the response reports.
    """

    def __init__(self, message: str, node: FieldNode) -> None:
        super().__init__(message)
        self.node = node
