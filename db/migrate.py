"""Run Alembic migrations programmatically (``conduit db upgrade`` and the test fixtures)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from db.engine import normalize_url

ALEMBIC_INI = Path(__file__).with_name("alembic.ini")


def alembic_config(url: str) -> Config:
    """An Alembic ``Config`` for the database at ``url`` (any form ``normalize_url`` takes)."""
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Upgrade the database at ``url`` to ``revision``; blocking (runs its own event loop)."""
    command.upgrade(alembic_config(url), revision)
