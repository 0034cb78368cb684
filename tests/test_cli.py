"""The ``conduit`` command line."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import logging
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from auth.passwords import verify_password
from db.engine import Database
from db.models import user_table
from graph.cli import main
from graph.schema import export_sdl


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    db = tmp_path / "cli.db"
    monkeypatch.setenv("CONDUIT_DATABASE_URL", f"sqlite:///{db}")
    monkeypatch.setenv("CONDUIT_JWT_SECRET_FILE", str(tmp_path / "secret"))
    return db


def test_schema_export_writes_the_schema(tmp_path: Path, env: Path) -> None:
    out = tmp_path / "schema.graphql"
    assert main(["schema", "export", "-o", str(out)]) == 0
    assert out.read_text() == export_sdl()


def test_upgrade_seed_and_set_role(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "upgrade"]) == 0
    assert (
        main(
            ["db", "seed", "--users", "5", "--articles", "10", "--comments", "5", "--favorites", "5", "--follows", "3"]
        )
        == 0
    )
    assert "seeded 5 users" in capsys.readouterr().out
    assert main(["db", "seed", "--users", "5"]) == 1  # never seeds twice
    assert main(["db", "seed", "--if-empty"]) == 0
    assert main(["user", "set-role", "demo", "MODERATOR"]) == 0
    assert "demo is now MODERATOR" in capsys.readouterr().out
    assert main(["user", "set-role", "nobody", "ADMIN"]) == 1


def test_production_refuses_to_start_without_a_secret(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CONDUIT_ENV", "production")
    monkeypatch.setenv("CONDUIT_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    assert main(["serve", "--port", "1"]) == 2
    assert "CONDUIT_JWT_SECRET is required" in capsys.readouterr().err


def test_several_workers_on_sqlite_are_refused(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--workers", "2"]) == 2
    assert "needs PostgreSQL" in capsys.readouterr().err
    assert not env.exists()  # refused before touching the database


# -- user administration: list, suspend, unsuspend, set-password, delete (both engines) --------


@pytest.fixture
def seeded(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A database with five seeded users (``demo``, an admin, first), through the command line."""
    monkeypatch.setenv("CONDUIT_DATABASE_URL", database_url)
    monkeypatch.setenv("CONDUIT_JWT_SECRET_FILE", str(tmp_path / "secret"))
    monkeypatch.setenv("CONDUIT_ENV", "test")
    monkeypatch.setenv("CONDUIT_PASSWORD_HASH_PROFILE", "cheapest")
    seed = ["db", "seed", "--users", "5", "--articles", "6", "--comments", "6", "--favorites", "6", "--follows", "4"]
    assert main(seed) == 0
    return database_url


def listed(capsys: pytest.CaptureFixture[str], *args: str) -> list[list[str]]:
    """The rows ``conduit user list ARGS`` prints, split into columns."""
    assert main(["user", "list", *args]) == 0
    return [line.split("\t") for line in capsys.readouterr().out.splitlines()]


def audited(caplog: pytest.LogCaptureFixture, event: str) -> list[dict[str, Any]]:
    return [r.__dict__ for r in caplog.records if r.name == "conduit.audit" and getattr(r, "event", None) == event]


def test_user_list_filters_newest_first(seeded: str, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    everyone = listed(capsys)
    assert len(everyone) == 5
    created = [dt.datetime.fromisoformat(row[3]) for row in everyone]
    assert created == sorted(created, reverse=True)  # newest first
    assert [row[0] for row in listed(capsys, "--search", "DEMO")] == ["demo"]  # prefix, any case
    assert [row[0] for row in listed(capsys, "--search", "demo@conduit")] == ["demo"]  # or the email's
    assert listed(capsys, "--search", "emo") == []  # the start only
    assert [row[0] for row in listed(capsys, "--role", "ADMIN")] == ["demo"]
    assert listed(capsys, "--suspended") == []
    assert len(listed(capsys, "--not-suspended")) == 5


def test_user_suspend_and_unsuspend(
    seeded: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="conduit.audit")
    capsys.readouterr()
    assert main(["user", "suspend", "demo", "--reason", "spam", "--until", "2000-01-01T00:00:00"]) == 2
    assert "must be in the future" in capsys.readouterr().err
    assert main(["user", "suspend", "demo", "--reason", "spam", "--until", "tomorrow"]) == 2
    assert main(["user", "suspend", "demo", "--reason", "  "]) == 2
    assert main(["user", "suspend", "nobody", "--reason", "spam"]) == 1
    assert listed(capsys, "--suspended") == []  # nothing happened

    until = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).replace(microsecond=0)
    assert main(["user", "suspend", "demo", "--reason", "spam", "--until", until.isoformat()]) == 0
    assert f"demo is suspended until {until.isoformat()}" in capsys.readouterr().out
    rows = listed(capsys, "--suspended")
    assert [row[0] for row in rows] == ["demo"] and rows[0][4] == f"suspended until {until.isoformat()}: spam"
    (record,) = audited(caplog, "user_suspended")
    assert record["source"] == "cli" and record["until"] == until.isoformat() and record["viewer_id"] is None
    assert record["levelname"] == "WARNING"

    assert main(["user", "unsuspend", "demo"]) == 0
    assert "demo is no longer suspended" in capsys.readouterr().out
    assert listed(capsys, "--suspended") == []
    (record,) = audited(caplog, "user_unsuspended")
    assert record["source"] == "cli" and record["was_suspended"] is True


def test_user_set_password_reads_stdin_never_an_argument(
    seeded: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.INFO, logger="conduit.audit")
    with pytest.raises(SystemExit):
        main(["user", "set-password", "demo", "new-password-1"])  # no password argument exists
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["user", "set-password", "demo"]) == 2
    assert "is too short" in capsys.readouterr().err

    monkeypatch.setattr("sys.stdin", io.StringIO("a-new-password\n"))
    assert main(["user", "set-password", "demo", "--stdin"]) == 0
    assert "demo's password is set" in capsys.readouterr().out
    stored = asyncio.run(_password_hash(seeded, "demo"))
    assert verify_password(stored, "a-new-password")
    (record,) = audited(caplog, "password_changed")
    assert record["source"] == "cli" and "dropped_fields" not in record

    # on a terminal it is asked twice, and must match
    monkeypatch.setattr("sys.stdin", _Terminal())
    answers = iter(["one-password", "another-password"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert main(["user", "set-password", "demo"]) == 2
    assert "differ" in capsys.readouterr().err
    assert verify_password(asyncio.run(_password_hash(seeded, "demo")), "a-new-password")


def test_user_delete_needs_yes_and_spares_the_last_admin(
    seeded: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="conduit.audit")
    capsys.readouterr()
    victim = next(row[0] for row in listed(capsys) if row[0] != "demo")
    assert main(["user", "delete", victim]) == 2
    assert main(["user", "delete", "demo", "--yes"]) == 1
    assert "only admin" in capsys.readouterr().err
    assert main(["user", "delete", victim, "--yes"]) == 0
    assert f"deleted {victim}" in capsys.readouterr().out
    assert victim not in [row[0] for row in listed(capsys)]
    (record,) = audited(caplog, "user_deleted")
    assert record["source"] == "cli" and record["by"] == "operator" and "dropped_fields" not in record


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def _password_hash(url: str, username: str) -> str:
    db = Database(url)
    try:
        async with db.engine.connect() as connection:
            statement = sa.select(user_table.c.password_hash).where(user_table.c.username == username)
            return str((await connection.execute(statement)).scalar_one())
    finally:
        await db.dispose()
