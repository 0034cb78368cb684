"""Operation limits checked before execution: depth, aliases, directives, tokens and cost.

Defaults and rules are the contract README's (Limits). Depth, aliases and directives depend
on the document alone, so they are a validation rule (cached with the document) that runs
before graphql-core's own rules and stops validation when a limit is exceeded: a hostile
document gets one error, not the work (and the hundred errors) of every other rule. Tokens
are counted by the parser (``document.py``), cost per request (``cost.py``). An operation over
a limit runs no resolver.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NoReturn

from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    Visitor,
    visit,
)
from graphql.language import Node
from graphql.validation.validate import ValidationAbortedError

INTROSPECTION_ROOTS = frozenset({"__schema", "__type"})


def too_complex(message: str, limit: str, value: int, maximum: int) -> GraphQLError:
    """A ``QUERY_TOO_COMPLEX`` error naming the limit and the measured value."""
    return GraphQLError(
        message, extensions={"code": "QUERY_TOO_COMPLEX", "limit": limit, "value": value, "maximum": maximum}
    )


def fragment_definitions(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    """The fragment definitions of ``document`` by name."""
    return {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}


def spread_fragments(node: Node, fragments: Mapping[str, FragmentDefinitionNode]) -> list[str]:
    """The names of the fragments ``node`` spreads, directly or through other fragments, in order
    of first spread; a name ``fragments`` lacks is left out."""
    found: list[str] = []
    pending: list[Node] = [node]

    class Spreads(Visitor):
        def enter_fragment_spread(self, spread: FragmentSpreadNode, *_args: object) -> None:
            name = spread.name.value
            if name not in found and name in fragments:
                found.append(name)
                pending.append(fragments[name])

    while pending:
        visit(pending.pop(), Spreads())
    return found


def selection_depth(
    selection_set: SelectionSetNode | None,
    fragments: Mapping[str, FragmentDefinitionNode],
    memo: dict[str, int] | None = None,
) -> int:
    """Levels of fields below ``selection_set``, fragments expanded, introspection not counted.

    Each fragment's depth is computed once (``memo``): a document spreading every fragment twice
    into the next would otherwise take time exponential in its length. A spread closing a cycle
    adds nothing (cycles are refused by graphql-core's rules).
    """
    if selection_set is None:
        return 0
    if memo is None:
        memo = {}
    deepest = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            if selection.name.value in INTROSPECTION_ROOTS:
                continue
            deepest = max(deepest, 1 + selection_depth(selection.selection_set, fragments, memo))
        elif isinstance(selection, InlineFragmentNode):
            deepest = max(deepest, selection_depth(selection.selection_set, fragments, memo))
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is not None and name not in memo:
                memo[name] = 0  # while in progress: a cycle back to it adds nothing
                memo[name] = selection_depth(fragment.selection_set, fragments, memo)
            deepest = max(deepest, memo.get(name, 0))
    return deepest


def _aliases(node: Any) -> Iterator[FieldNode]:
    selection_set = getattr(node, "selection_set", None)
    if selection_set is None:
        return
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode) and selection.alias is not None:
            yield selection
        yield from _aliases(selection)


def directive_counts(document: DocumentNode) -> Iterator[int]:
    """The number of directives on every node of ``document`` that may carry some.

    Fields, fragment spreads, inline fragments, operations, fragment definitions and variable
    definitions; walked without recursion, so no document can exhaust the stack here.
    """
    stack: list[Node] = list(document.definitions)
    while stack:
        node = stack.pop()
        directives = getattr(node, "directives", None)
        if directives:
            yield len(directives)
        stack.extend(getattr(node, "variable_definitions", None) or ())
        selection_set = getattr(node, "selection_set", None)
        if selection_set is not None:
            stack.extend(selection_set.selections)


def limit_rule(
    max_depth: int,
    max_aliases: int,
    max_directives: int = 50,
    max_directives_per_field: int = 5,
) -> type[ASTValidationRule]:
    """A validation rule refusing documents over the depth, alias or directive limits.

    ``max_directives`` counts every directive of the document (graphql-armor's max-directives),
    ``max_directives_per_field`` the directives on any one field, fragment spread or other
    node. Unknown and repeated directives count too: they cost validation work before they are
    refused. Each error is ``QUERY_TOO_COMPLEX`` with ``limit`` (``depth``, ``aliases``,
    ``totalDirectives`` or ``directives``), ``value`` and ``maximum``. The rule runs on entering
    the document, before any other rule visits a node, and stops validation when it reports.
    """

    class OperationLimitsRule(ASTValidationRule):
        def enter_document(self, node: DocumentNode, *_args: Any) -> None:
            errors: list[GraphQLError] = []
            aliases = sum(1 for definition in node.definitions for _ in _aliases(definition))
            if aliases > max_aliases:
                errors.append(
                    too_complex(
                        f"Operation has {aliases} aliases; the limit is {max_aliases}.",
                        "aliases",
                        aliases,
                        max_aliases,
                    )
                )
            total = most = 0
            for count in directive_counts(node):
                total += count
                most = max(most, count)
            if total > max_directives:
                errors.append(
                    too_complex(
                        f"Document has {total} directives; the limit is {max_directives}.",
                        "totalDirectives",
                        total,
                        max_directives,
                    )
                )
            if most > max_directives_per_field:
                errors.append(
                    too_complex(
                        f"A field has {most} directives; the limit is {max_directives_per_field}.",
                        "directives",
                        most,
                        max_directives_per_field,
                    )
                )
            fragments = fragment_definitions(node)
            for definition in node.definitions:
                if isinstance(definition, OperationDefinitionNode):
                    depth = selection_depth(definition.selection_set, fragments)
                    if depth > max_depth:
                        errors.append(
                            too_complex(
                                f"Operation has depth {depth}; the limit is {max_depth}.",
                                "depth",
                                depth,
                                max_depth,
                            )
                        )
            if errors:
                self.stop(errors)

        def stop(self, errors: list[GraphQLError]) -> NoReturn:
            for error in errors[:-1]:
                self.report_error(error)
            # graphql-core ends the whole validation on this error and returns it with the others
            last = errors[-1]
            raise ValidationAbortedError(last.message, extensions=last.extensions)

    return OperationLimitsRule
