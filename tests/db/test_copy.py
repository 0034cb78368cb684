"""``conduit db copy``: SQLite -> PostgreSQL -> SQLite without losing a row, and what it refuses.

Every copy runs through the real CLI entry point on real databases: SQLite files under
``tmp_path`` and databases on the session's throwaway PostgreSQL cluster. The source is seeded
by ``conduit db seed`` and then used through the real GraphQL app, so refresh tokens (used and
revoked), rate-limit events, follows, favorites, tags, comments, a mailed token and its mail all
exist before the copy.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from db.copy import copy_order
from db.engine import Database
from db.migrate import upgrade
from db.seed import DEMO_EMAIL, DEMO_PASSWORD
from graph.app import create_app
from graph.cli import main
from graph.settings import Settings
from tests.conftest import GQL, SECRET
from tests.postgres import Cluster

SEED = ["--users", "12", "--articles", "40", "--comments", "90", "--favorites", "70", "--follows", "25", "--seed", "3"]
TABLES = [table.name for table in copy_order()]
UNIQUE_WORD = "quokkaesque"  # in the title of the article made through the API, and nowhere else

LOGIN = "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { token refreshToken user { username role } } }"
REGISTER = "mutation($u: String!, $e: String!, $p: String!) { register(input: {username: $u, email: $e, password: $p}) { token refreshToken } }"
REFRESH = "mutation($t: String!) { refreshToken(refreshToken: $t) { token refreshToken } }"
LOGOUT = "mutation($t: String) { logout(refreshToken: $t) }"
CREATE = "mutation($i: CreateArticleInput!) { createArticle(input: $i) { slug title tagList author { username } } }"
COMMENT = "mutation($s: String!, $b: String!) { addComment(slug: $s, body: $b) { body author { username } } }"
FAVORITE = "mutation($s: String!) { favoriteArticle(slug: $s) { favoritesCount } }"
FOLLOW = "mutation($u: String!) { followUser(username: $u) { username } }"
RESET_REQUEST = "mutation($e: String!) { requestPasswordReset(email: $e) }"
SEARCH = "query($w: String!) { articles(search: $w, first: 100) { totalCount nodes { slug title } } }"


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CONDUIT_JWT_SECRET_FILE", str(tmp_path / "secret"))
    monkeypatch.delenv("CONDUIT_DATABASE_URL", raising=False)


@pytest.fixture
def new_pg_database(pg_cluster: Cluster) -> Iterator[Any]:
    """Makes empty PostgreSQL databases with unique names; drops them afterwards."""
    made: list[str] = []

    def make() -> str:
        name = f"copy_{uuid.uuid4().hex[:12]}"
        pg_cluster.sql(f"CREATE DATABASE {name}")
        made.append(name)
        return pg_cluster.url(name)

    yield make
    for name in made:
        pg_cluster.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def seed_sqlite(path: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    url = f"sqlite:///{path}"
    monkeypatch.setenv("CONDUIT_DATABASE_URL", url)
    assert main(["db", "seed", *(args or SEED)]) == 0
    monkeypatch.delenv("CONDUIT_DATABASE_URL")
    return url


def copy(source: str, target: str, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["db", "copy", "--from", source, "--to", target, *extra])
    out, err = capsys.readouterr()
    return code, out, err


def printed_counts(out: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in TABLES:
            counts[parts[0]] = int(parts[1].replace(",", ""))
    return counts


async def _dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    db = Database(url)
    try:
        async with db.engine.connect() as connection:
            return {
                table.name: [
                    tuple(row)
                    for row in await connection.execute(sa.select(*table.columns).order_by(*table.primary_key.columns))
                ]
                for table in copy_order()
            }
    finally:
        await db.dispose()


def dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, all columns, in primary-key order (values as the models type them)."""
    return asyncio.run(_dump(url))


def raw_sqlite_dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table as SQLite stores it (timestamps are the stored text)."""
    with closing(sqlite3.connect(path)) as connection:
        return {
            table.name: connection.execute(
                f'SELECT * FROM "{table.name}" ORDER BY '
                + ", ".join(f'"{column.name}"' for column in table.primary_key.columns)
            ).fetchall()
            for table in copy_order()
        }


class Api:
    """The real app on ``url``, driven over HTTP (ASGI) as a client would."""

    def __init__(self, url: str, tmp_path: Path) -> None:
        self.settings = Settings(env="test", database_url=url, jwt_secret=SECRET, jwt_secret_file=tmp_path / "secret")

    async def __aenter__(self) -> GQL:
        self.app = create_app(self.settings)
        transport = httpx.ASGITransport(app=self.app, client=("127.0.0.1", 50000))
        self.http = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        return GQL(self.http)

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()
        state = self.app.state.conduit
        await state.broker.close()
        await state.db.dispose()


async def use_the_source(url: str, tmp_path: Path) -> None:
    """Make rows in every table through the API: tokens used and revoked, rate-limit events, links, mail."""
    api = Api(url, tmp_path)
    async with api as gql:
        reader = (await gql.ok(REGISTER, {"u": "reader", "e": "reader@example.com", "p": "reader-password"}))[
            "register"
        ]
        assert (await gql(LOGIN, {"e": DEMO_EMAIL, "p": "wrong-password"})).errors  # a counted failure
        demo = (await gql.ok(LOGIN, {"e": DEMO_EMAIL, "p": DEMO_PASSWORD}))["login"]
        rotated = (await gql.ok(REFRESH, {"t": demo["refreshToken"]}))["refreshToken"]  # marks one used
        assert (await gql.ok(LOGOUT, {"t": rotated["refreshToken"]}, rotated["token"]))["logout"] is True
        article = (
            await gql.ok(
                CREATE,
                {
                    "i": {
                        "title": f"Größe {UNIQUE_WORD} naïve 🚀",
                        "description": "Ünïcode, quotes ' \" and a\nnewline",
                        "body": "body with\ttabs and emoji 🦘",
                        "tagList": ["zeta-new-tag", "python", "alpha-new-tag"],
                    }
                },
                reader["token"],
            )
        )["createArticle"]
        assert article["tagList"] == ["zeta-new-tag", "python", "alpha-new-tag"]
        await gql.ok(COMMENT, {"s": article["slug"], "b": "first! 🎉"}, demo["token"])
        await gql.ok(FAVORITE, {"s": article["slug"]}, demo["token"])
        await gql.ok(FOLLOW, {"u": "reader"}, demo["token"])
        assert (await gql.ok(RESET_REQUEST, {"e": "reader@example.com"}))["requestPasswordReset"] is True
        # one round of the mail worker: the account_token row, and the mail kept (no SMTP here)
        assert (await api.app.state.conduit.mail.run_once()).sent == 1


async def check_the_copy(url: str, tmp_path: Path, search_word: str) -> None:
    """Log in, search, and write new rows of every kind on a copy (ids must not collide)."""
    async with Api(url, tmp_path) as gql:
        login = (await gql.ok(LOGIN, {"e": DEMO_EMAIL, "p": DEMO_PASSWORD}))["login"]
        assert login["user"] == {"username": "demo", "role": "ADMIN"}
        assert (await gql(LOGIN, {"e": "reader@example.com", "p": "not-it"})).errors  # a rate_limit_event row
        found = (await gql.ok(SEARCH, {"w": UNIQUE_WORD}))["articles"]
        assert [node["title"] for node in found["nodes"]] == [f"Größe {UNIQUE_WORD} naïve 🚀"]
        seeded = (await gql.ok(SEARCH, {"w": search_word}))["articles"]
        assert seeded["totalCount"] >= 1
        assert any(search_word in node["title"].lower().split() for node in seeded["nodes"])

        newcomer = (await gql.ok(REGISTER, {"u": "newcomer", "e": "new@example.com", "p": "newcomer-pw"}))["register"]
        article = (
            await gql.ok(
                CREATE,
                {"i": {"title": "Written after the move", "description": "d", "body": "b", "tagList": ["moved"]}},
                newcomer["token"],
            )
        )["createArticle"]
        await gql.ok(COMMENT, {"s": article["slug"], "b": "works"}, login["token"])
        await gql.ok(COMMENT, {"s": article["slug"], "b": "still works"}, newcomer["token"])
        assert (await gql.ok(SEARCH, {"w": "move"}))["articles"]["totalCount"] == 1  # new rows are indexed too


def assert_utc_timestamps(rows: dict[str, list[tuple[Any, ...]]]) -> None:
    stamps = [value for table in rows.values() for row in table for value in row if isinstance(value, dt.datetime)]
    assert stamps and all(stamp.utcoffset() == dt.timedelta(0) for stamp in stamps)
    assert any(stamp.microsecond for stamp in stamps)  # sub-second precision is there to lose


@pytest.mark.slow  # PostgreSQL
def test_sqlite_to_postgres_and_back_keeps_every_row(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    cli_env: None,
    new_pg_database: Any,
) -> None:
    source_path = tmp_path / "source.db"
    source = seed_sqlite(source_path, monkeypatch)
    asyncio.run(use_the_source(source, tmp_path))
    original = dump(source)
    assert all(original[name] for name in TABLES), {name: len(rows) for name, rows in original.items()}
    token_stamps = [(row[6], row[7]) for row in original["refresh_token"]]  # used_at, revoked_at
    assert any(used for used, _ in token_stamps) and any(revoked for _, revoked in token_stamps)
    assert_utc_timestamps(original)

    postgres = new_pg_database()
    code, out, err = copy(source, postgres, capsys)
    assert code == 0, err
    assert printed_counts(out) == {name: len(rows) for name, rows in original.items()}
    assert dump(postgres) == original

    back_path = tmp_path / "back.db"
    code, out, err = copy(postgres, f"sqlite:///{back_path}", capsys, "--batch-size", "7")
    assert code == 0, err
    assert printed_counts(out) == {name: len(rows) for name, rows in original.items()}
    assert dump(f"sqlite:///{back_path}") == original
    # Byte for byte as SQLite stores it, timestamps' text included, after a trip through timestamptz.
    assert raw_sqlite_dump(back_path) == raw_sqlite_dump(source_path)
    with closing(sqlite3.connect(back_path)) as connection:  # the FTS index matches the copied articles
        connection.execute("INSERT INTO article_fts(article_fts) VALUES ('integrity-check')")

    search_word = original["article"][0][2].split()[0].lower()  # a word of the first article's title
    asyncio.run(check_the_copy(postgres, tmp_path, search_word))
    asyncio.run(check_the_copy(f"sqlite:///{back_path}", tmp_path, search_word))
    after = dump(postgres)
    for name in ("user", "article", "tag", "comment", "refresh_token", "rate_limit_event"):
        ids = [row[0] for row in after[name]]
        assert len(ids) > len(original[name]) and ids[: len(original[name])] == [r[0] for r in original[name]]
        assert ids[len(original[name])] == max(r[0] for r in original[name]) + 1  # the sequence moved past


@pytest.mark.slow  # PostgreSQL
def test_copy_into_a_non_empty_target_is_refused_and_changes_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    cli_env: None,
    new_pg_database: Any,
) -> None:
    source = seed_sqlite(tmp_path / "source.db", monkeypatch)
    other = seed_sqlite(tmp_path / "other.db", monkeypatch, "--users", "3", "--articles", "2", "--seed", "9")
    postgres = new_pg_database()
    assert copy(other, postgres, capsys)[0] == 0
    sqlite_target = tmp_path / "target.db"
    assert copy(other, f"sqlite:///{sqlite_target}", capsys)[0] == 0

    for target in (postgres, f"sqlite:///{sqlite_target}"):
        before = dump(target)
        code, out, err = copy(source, target, capsys)
        assert code == 1
        assert out == ""
        assert err.count("\n") == 1 and "Traceback" not in err
        assert "copy refused" in err and "is not empty" in err and "copy only into an empty database" in err
        assert dump(target) == before

    # A target with a single row anywhere counts as not empty.
    lone = new_pg_database()
    upgrade(lone)
    asyncio.run(_insert_rate_limit_event(lone))
    code, _, err = copy(source, lone, capsys)
    assert code == 1 and "rows in rate_limit_event" in err


async def _insert_rate_limit_event(url: str) -> None:
    from db.models import rate_limit_event_table

    db = Database(url)
    try:
        async with db.engine.begin() as connection:
            await connection.execute(
                sa.insert(rate_limit_event_table), [{"bucket": "x", "created_at": dt.datetime.now(dt.UTC)}]
            )
    finally:
        await db.dispose()


@pytest.mark.slow  # PostgreSQL
def test_a_copy_that_fails_midway_writes_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    cli_env: None,
    new_pg_database: Any,
) -> None:
    path = tmp_path / "broken.db"
    source = seed_sqlite(path, monkeypatch)
    with closing(sqlite3.connect(path)) as connection:  # foreign keys are off by default in sqlite3
        connection.execute(
            "INSERT INTO comment (body, article_id, author_id, created_at, updated_at) "
            "VALUES ('orphan', 999999, 1, '2024-01-01 00:00:00.000000', '2024-01-01 00:00:00.000000')"
        )
        connection.commit()
    for target in (new_pg_database(), f"sqlite:///{tmp_path / 'target.db'}"):
        code, out, err = copy(source, target, capsys)
        assert code == 1 and out == ""
        assert err.count("\n") == 1 and "Traceback" not in err
        assert "copy failed, no rows were written" in err and "foreign key" in err.lower()
        assert all(not rows for rows in dump(target).values())  # users and articles went in, then back out


def test_copy_refuses_sources_it_cannot_copy_faithfully(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    cli_env: None,
) -> None:
    target = f"sqlite:///{tmp_path / 'target.db'}"
    code, _, err = copy(f"sqlite:///{tmp_path / 'typo.db'}", target, capsys)
    assert code == 1 and "typo.db does not exist" in err
    assert not (tmp_path / "typo.db").exists()

    old = tmp_path / "old.db"
    upgrade(f"sqlite:///{old}", "0001")
    code, _, err = copy(f"sqlite:///{old}", target, capsys)
    assert code == 1 and "revision 0001" in err and "conduit db upgrade" in err

    source = seed_sqlite(tmp_path / "source.db", monkeypatch)
    code, _, err = copy(source, source, capsys)
    assert code == 1 and "same database" in err

    with closing(sqlite3.connect(tmp_path / "source.db")) as connection:
        connection.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
    code, _, err = copy(source, target, capsys)
    assert code == 1 and "notes" in err
    assert not (tmp_path / "target.db").exists()  # refused before the target was created
