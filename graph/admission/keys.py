"""Cache keys for what admission remembers per document and variables (costs, coerced variables)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson

COST_CACHE_VARIABLES_BYTES = 1024
COST_CACHE_DOCUMENT_CHARS = 16 * 1024
CACHE_ENTRY_OVERHEAD_BYTES = 200


def cache_encoding(body: str, variables: Mapping[str, Any] | None) -> bytes | None:
    """``variables`` as a cache key's JSON, or None when the request's result is not to be remembered.

    Not remembered: a document over ``COST_CACHE_DOCUMENT_CHARS`` characters (every key holds
    its text), variables that are not JSON (a caller's own values, integers over 64 bits) or
    over ``COST_CACHE_VARIABLES_BYTES`` as JSON, and variables holding a float that is not
    finite (orjson writes NaN and the infinities as ``null``, so they would share ``null``'s key).
    """
    if len(body) > COST_CACHE_DOCUMENT_CHARS:
        return None
    if not variables:
        return b""
    try:
        encoded = orjson.dumps(variables, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return None
    if len(encoded) > COST_CACHE_VARIABLES_BYTES or not _all_finite(variables):
        return None
    return encoded


def _all_finite(value: Any) -> bool:
    """Whether no float in ``value`` (a JSON value: mappings, lists, scalars) is NaN or infinite."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue  # what variables mostly hold, decoded by orjson: no ABC check for them
        if isinstance(item, float):
            if not math.isfinite(item):
                return False
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return True
