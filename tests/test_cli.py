"""The ``conduit`` command line."""

from __future__ import annotations

from pathlib import Path

import pytest

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
