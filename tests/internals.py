"""``relied_on``: a failure that names the dependency, its version and the adapter that must change."""

from __future__ import annotations

import importlib.metadata
import platform
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


def version_of(library: str) -> str:
    """``library``'s installed version; Python's for ``asyncio``."""
    if library == "asyncio":
        return f"(Python {platform.python_version()})"
    return importlib.metadata.version(library)


@contextmanager
def relied_on(library: str, internal: str, adapter: str) -> Iterator[None]:
    """Turn any failure inside into one that says which internal of which library changed, and who uses it."""
    try:
        yield
    except Exception as error:
        pytest.fail(
            f"{library} {version_of(library)} changed {internal}, which {adapter} relies on "
            f"({type(error).__name__}: {error}); update {adapter} for this version, or pin {library} back",
            pytrace=False,
        )
