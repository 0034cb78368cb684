"""The ``conduit`` command: serve, database upgrade and seed, schema export, docs build, mail, user administration."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
import logging
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from auth.passwords import hash_password
from db.broker import Event, sessions_closed
from db.engine import Database, is_sqlite_url
from db.migrate import upgrade
from db.models import Role
from db.seed import DEMO_EMAIL, DEMO_PASSWORD, SeedPlan, is_empty, seed, timed_seed_message
from db.users import (
    DeletedUser,
    LastAdmin,
    RoleChange,
    SuspensionChange,
    SuspensionInPast,
    change_role,
    delete_user,
    list_users,
    set_password,
    suspend_user,
    unsuspend_user,
)
from graph.docs import EXAMPLES, STATIC
from graph.settings import Settings

T = TypeVar("T")

logger = logging.getLogger("conduit")


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from graph.observability import configure_logging, json_logs, logging_config

    as_json = json_logs(args.log_format or settings.log_format, production=settings.is_production)
    configure_logging(args.log_level, json=as_json)
    if is_sqlite_url(settings.database_url):
        if args.workers > 1:
            # each process would have its own subscription broker: events would reach only some subscribers
            print(
                "conduit: --workers > 1 needs PostgreSQL (its LISTEN/NOTIFY carries subscription events "
                "between processes); set CONDUIT_DATABASE_URL to a postgresql:// URL or run one worker",
                file=sys.stderr,
            )
            return 2
        upgrade(settings.database_url)  # an embedded database is ours to keep current
        if args.demo:
            _seed_if_empty(settings, SeedPlan())
    if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # every worker writes its metrics there, so /metrics adds up all workers whichever answers
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="conduit-metrics-")
    settings.resolve_jwt_secret()  # fail before binding when production has no secret
    if settings.metrics_port is not None and settings.metrics_port == args.port:
        print(f"conduit: CONDUIT_METRICS_PORT must differ from --port ({args.port})", file=sys.stderr)
        return 2
    settings.resolve_smtp()  # ... or no mail server (account mails must be delivered, not logged)
    url = f"http://{args.host}:{args.port}/graphql"
    print(f"Conduit GraphQL on {settings.database_url}", flush=True)
    if settings.playground_enabled:
        print(f"Playground: {url}", flush=True)
    if settings.metrics_port is not None:  # each worker's lifespan binds it (graph/observability/listener.py)
        metrics_url = f"http://{settings.metrics_host}:{settings.metrics_port}/metrics"
        print(f"Metrics: {metrics_url} (not on the public port)", flush=True)
    uvicorn.run(
        "graph.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        reload=args.reload,
        workers=None if args.reload else args.workers,
        log_level=args.log_level,
        # applied again in every worker process; conduit.access replaces uvicorn's access log
        log_config=logging_config(args.log_level, json=as_json),
        access_log=False,
        proxy_headers=True,
        timeout_graceful_shutdown=10,
    )
    return 0


def _upgrade(args: argparse.Namespace, settings: Settings) -> int:
    upgrade(settings.database_url, args.revision)
    print(f"database at {settings.database_url} is at revision {args.revision}")
    return 0


def _seed_if_empty(settings: Settings, plan: SeedPlan) -> None:
    async def run() -> None:
        db = Database(settings.database_url)
        try:
            if await is_empty(db):
                started = time.monotonic()
                counts = await seed(db, plan, hash_password(DEMO_PASSWORD))
                print(timed_seed_message(counts, time.monotonic() - started), flush=True)
                print(f"Demo login: {DEMO_EMAIL} / {DEMO_PASSWORD} (an admin)", flush=True)
        finally:
            await db.dispose()

    asyncio.run(run())


def _seed(args: argparse.Namespace, settings: Settings) -> int:
    plan = SeedPlan(
        users=args.users,
        articles=args.articles,
        comments=args.comments,
        favorites=args.favorites,
        follows=args.follows,
        seed=args.seed,
    )

    async def run() -> int:
        db = Database(settings.database_url)
        try:
            if not await is_empty(db):
                print("the database already has users; nothing seeded", file=sys.stderr)
                return 0 if args.if_empty else 1
            started = time.monotonic()
            counts = await seed(db, plan, hash_password(DEMO_PASSWORD))
            print(timed_seed_message(counts, time.monotonic() - started))
            print(f"Demo login: {DEMO_EMAIL} / {DEMO_PASSWORD} (an admin); every user's password is the same")
            return 0
        finally:
            await db.dispose()

    upgrade(settings.database_url)
    return asyncio.run(run())


def _copy(args: argparse.Namespace, _settings: Settings) -> int:
    from db.copy import CopyError, copy_database, display_url

    started = time.monotonic()
    try:
        counts = asyncio.run(copy_database(args.source, args.target, batch_size=args.batch_size))
    except CopyError as error:
        print(f"conduit: copy refused: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # one line, not a traceback: the transaction was rolled back
        print(f"conduit: copy failed, no rows were written: {_one_line(error)}", file=sys.stderr)
        return 1
    print(f"copied {display_url(args.source)} -> {display_url(args.target)}")
    width = max(map(len, counts))
    for table, rows in counts.items():
        print(f"  {table:<{width}}  {rows:>10,}")
    print(f"copied {sum(counts.values()):,} rows in {time.monotonic() - started:.1f} s")
    return 0


def _one_line(error: BaseException) -> str:
    """The first line of a (database) error's message, with its type."""
    cause = getattr(error, "orig", None) or error  # the driver's error behind a SQLAlchemy wrapper
    message = (str(cause).strip().splitlines() or [""])[0]
    return f"{type(cause).__name__}: {message}" if message else type(cause).__name__


def _set_role(args: argparse.Namespace, settings: Settings) -> int:
    from auth.audit import audit

    async def run() -> int:
        async def work(session: AsyncSession, _user_id: int) -> RoleChange | None:
            return await change_role(session=session, username=args.username, role=Role(args.role))

        change = await _user_work(settings, args.username, work, public=True)
        if change is None:
            print(f"no user named {args.username!r}", file=sys.stderr)
            return 1
        old, new = change.old_role.value, change.new_role.value
        audit("role_changed", source="cli", target_user_id=change.user_id, old_role=old, new_role=new)
        print(f"{args.username} is now {new}")
        return 0

    return asyncio.run(run())


# -- user administration: the same data functions as the API (db/users.py) ----------------------


async def _user_work(
    settings: Settings,
    username: str,
    work: Callable[[AsyncSession, int], Awaitable[T]],
    *,
    public: bool = False,
    everything: bool = False,
) -> T | None:
    """Run ``work(session, user_id)`` in one write transaction on ``username``'s row; ``None`` if no such user.

    When ``work`` ends the user's sessions (it returns a ``_SessionsClosed``),
    ``SESSIONS_CLOSED`` goes out with the commit on PostgreSQL,
    so every server process closes the user's WebSockets. On SQLite the servers' brokers live in
    their own processes and cannot hear a command: open WebSockets stay open until they end
    (the user's tokens are refused at once all the same).

    ``public``: the work changes what the API shows of the user (its role), so the servers'
    response caches purge the user's tags (``everything``: every entry, for a deletion) as
    after the mutation that does the same (``_purge_response_caches``).
    """
    from db.broker import PostgresBroker
    from db.models import user_table
    from db.response_store import FLUSH
    from graph.responses.cache import PURGED
    from graph.responses.tags import USER, entity

    db = Database(settings.database_url)
    session = db.session()
    pending: list[Event] = []
    tags: tuple[str, ...] = ()

    async def notify(connection: AsyncConnection) -> None:
        if not db.is_sqlite:
            for event in pending:
                await PostgresBroker(db.url).publish(event, connection)

    try:
        async with db.transaction(session, before_commit=notify):
            # not locked here: the work's own writes lock what they change, and delete_user
            # locks the admins' rows before the user's
            named = sa.select(user_table.c.id).where(user_table.c.username == username)
            user_id = (await session.execute(named)).scalar()
            if user_id is None:
                return None
            result = await work(session, user_id)
            if isinstance(result, _SessionsClosed):
                pending.append(sessions_closed(user_id, result.reason))
            if public or everything:
                # the bare kind too, as after setUserRole: answers that show a role without naming whose
                tags = (FLUSH,) if everything else (*entity(USER, user_id, username), USER)
                pending.append(Event(PURGED, {"tags": list(tags), "origin": "cli"}))
    finally:
        await session.close()
        await db.dispose()
    if tags:
        await _purge_response_caches(settings, tags)
    return result


async def _purge_response_caches(settings: Settings, tags: tuple[str, ...]) -> None:
    """Purge ``tags`` from the servers' response caches after a command's commit.

    In Redis (``CONDUIT_CACHE_URL``) here, for every replica; the in-process caches of servers on
    PostgreSQL hear the purge that went out with the commit (``response_cache_purged``). Servers
    on SQLite without Redis cannot hear a command: their entries show the change once they
    expire (README, Response cache). A purge that cannot reach Redis is reported, not fatal.
    """
    from db.redis import RedisClient
    from db.response_store import RedisResponseStore, ResponseStoreUnavailable
    from graph.responses.tags import KINDS

    if settings.cache_url is None or not settings.response_cache:
        return
    redis = RedisClient(settings.cache_url.get_secret_value(), timeout=settings.cache_timeout_seconds)
    try:
        await RedisResponseStore(redis, KINDS).purge(tags)
    except ResponseStoreUnavailable:
        print("conduit: Redis did not answer: cached answers show the change when they expire", file=sys.stderr)
    finally:
        await redis.close()


@dataclass(frozen=True)
class _SessionsClosed:
    """A command's result that ends the user's sessions (their WebSockets close with ``reason``)."""

    reason: str
    value: Any


def _parse_until(text: str | None) -> dt.datetime | None:
    """``--until`` as an aware datetime: ISO 8601; without an offset it is read as UTC."""
    if text is None:
        return None
    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _list_users(args: argparse.Namespace, settings: Settings) -> int:
    if args.limit < 1:
        print("conduit: --limit must be at least 1", file=sys.stderr)
        return 2

    async def run() -> int:
        db = Database(settings.database_url)
        session = db.session()
        try:
            rows = await list_users(
                session=session,
                search=args.search,
                role=Role(args.role) if args.role else None,
                is_suspended=args.suspended,
                limit=args.limit,
            )
        finally:
            await session.close()
            await db.dispose()
        for row in rows:
            if row.suspended:
                until = _aware(row.suspended_until).isoformat() if row.suspended_until is not None else "forever"
                state = f"suspended until {until}: {row.suspension_reason}"
            else:
                state = "active"
            created = _aware(row.created_at).isoformat()
            print(f"{row.username}\t{row.email}\t{row.role}\t{created}\t{state}")
        return 0

    return asyncio.run(run())


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _suspend(args: argparse.Namespace, settings: Settings) -> int:
    from auth.audit import audit

    reason = args.reason.strip()
    if not reason:
        print("conduit: --reason can't be empty", file=sys.stderr)
        return 2
    try:
        until = _parse_until(args.until)
    except ValueError:
        print(f"conduit: --until {args.until!r} is not an ISO 8601 date and time", file=sys.stderr)
        return 2

    async def work(session: AsyncSession, user_id: int) -> _SessionsClosed:
        change = await suspend_user(session=session, user_id=user_id, reason=reason, until=until, by_id=None)
        return _SessionsClosed("account suspended", change)

    try:
        done = asyncio.run(_user_work(settings, args.username, work))
    except SuspensionInPast:
        print("conduit: --until must be in the future", file=sys.stderr)
        return 2
    if done is None:
        print(f"no user named {args.username!r}", file=sys.stderr)
        return 1
    change: SuspensionChange = done.value
    until_text = change.until.isoformat() if change.until is not None else None
    audit(
        "user_suspended",
        source="cli",
        target_user_id=change.user_id,
        until=until_text,
        sessions_revoked=change.sessions_revoked,
    )
    print(f"{args.username} is suspended until {until_text or 'further notice'}")
    return 0


def _unsuspend(args: argparse.Namespace, settings: Settings) -> int:
    from auth.audit import audit

    async def work(session: AsyncSession, user_id: int) -> SuspensionChange:
        return await unsuspend_user(session=session, user_id=user_id)

    change = asyncio.run(_user_work(settings, args.username, work))
    if change is None:
        print(f"no user named {args.username!r}", file=sys.stderr)
        return 1
    audit("user_unsuspended", source="cli", target_user_id=change.user_id, was_suspended=change.was_suspended)
    print(f"{args.username} is no longer suspended" if change.was_suspended else f"{args.username} was not suspended")
    return 0


def _read_new_password(from_stdin: bool) -> str | None:
    """The new password: one line of stdin (``--stdin`` or not a terminal), else asked twice; ``None`` if they differ.

    Never an argument: arguments show in ``ps`` and in shell history.
    """
    if from_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("New password: ")
    if getpass.getpass("Again: ") != first:
        return None
    return first


def _set_password(args: argparse.Namespace, settings: Settings) -> int:
    from auth.audit import audit
    from auth.passwords import use_profile
    from graph.errors import FieldErrors
    from graph.validation import check_password

    password = _read_new_password(args.stdin)
    if password is None:
        print("conduit: the passwords differ; nothing changed", file=sys.stderr)
        return 2
    errors = FieldErrors()
    check_password(errors, password)
    if errors:
        print(f"conduit: the password {', '.join(errors.fields['password'])}", file=sys.stderr)
        return 2
    use_profile(settings.password_hash_profile)
    password_hash = hash_password(password)

    async def work(session: AsyncSession, user_id: int) -> tuple[int, int]:
        return user_id, await set_password(session=session, user_id=user_id, password_hash=password_hash)

    done = asyncio.run(_user_work(settings, args.username, work))
    if done is None:
        print(f"no user named {args.username!r}", file=sys.stderr)
        return 1
    user_id, revoked = done
    audit("password_changed", source="cli", user_id=user_id, sessions_revoked=revoked)
    print(f"{args.username}'s password is set; {revoked} refresh token(s) revoked")
    return 0


def _delete_user(args: argparse.Namespace, settings: Settings) -> int:
    from graph.mutations.moderation import audit_deleted

    if not args.yes:
        print(
            f"conduit: deleting {args.username!r} and everything they wrote cannot be undone; add --yes",
            file=sys.stderr,
        )
        return 2

    async def work(session: AsyncSession, user_id: int) -> _SessionsClosed:
        return _SessionsClosed("account deleted", await delete_user(session=session, user_id=user_id))

    try:
        done = asyncio.run(_user_work(settings, args.username, work, everything=True))
    except LastAdmin:
        print(f"conduit: {args.username} is the only admin; make another admin first", file=sys.stderr)
        return 1
    if done is None:
        print(f"no user named {args.username!r}", file=sys.stderr)
        return 1
    deleted: DeletedUser = done.value
    audit_deleted(deleted, source="cli", by="operator")
    print(f"deleted {args.username}: " + ", ".join(f"{count} {name}" for name, count in deleted.counts().items()))
    return 0


def _mail_list(args: argparse.Namespace, settings: Settings) -> int:
    from db.accounts import list_mail

    async def run() -> list[Any]:
        db = Database(settings.database_url)
        session = db.session()
        try:
            return list(await list_mail(session, limit=args.limit))
        finally:
            await session.close()
            await db.dispose()

    try:
        rows = asyncio.run(run())
    except Exception as error:  # no database, or one without the table: one line, not a traceback
        print(f"conduit: cannot read mail_outbox: {_one_line(error)}", file=sys.stderr)
        return 1
    if not rows:
        print("no mail")
    for row in rows:
        print(f"#{row.id} {row.kind} to {row.recipient}")
        print(f"  subject: {row.subject or '(not rendered yet: the server renders it)'}")
        print(f"  created: {_stamp(row.created_at)}")
        if row.sent_at is not None:
            print(f"  sent:    {_stamp(row.sent_at)}")
        else:
            last = f", last error: {row.last_error}" if row.last_error else ""
            print(f"  sent:    not yet ({row.attempts} attempt{'s' if row.attempts != 1 else ''}{last})")
        if row.text_body:
            print("", *(f"  | {line}" for line in row.text_body.rstrip("\n").splitlines()), sep="\n")
        elif row.sent_at is not None:
            print("  (body cleared once the SMTP server took it: it held a live token)")
        print()
    return 0


def _stamp(value: Any) -> str:
    """A stored timestamp as ISO 8601 UTC, to the second."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    return str(aware.astimezone(dt.UTC).isoformat(timespec="seconds"))


def _export_schema(args: argparse.Namespace, _settings: Settings) -> int:
    from graph.schema import export_sdl

    sdl = export_sdl()
    if args.output == "-":
        sys.stdout.write(sdl)
    else:
        Path(args.output).write_text(sdl)
        print(f"wrote {args.output}")
    return 0


def _build_docs(args: argparse.Namespace, _settings: Settings) -> int:
    from graph import docs
    from graph.schema import export_sdl

    with tempfile.TemporaryDirectory(prefix="conduit-schema-") as work:
        schema = Path(args.schema) if args.schema else Path(work) / "schema.graphql"
        if not args.schema:  # the code's schema, as `conduit schema export` writes it
            schema.write_text(export_sdl())
        try:
            docs.build(schema, Path(args.examples), Path(args.output), docs.default_cache())
        except docs.DocsBuildError as error:
            print(f"conduit: {error}", file=sys.stderr)
            return 1
    print(f"wrote {Path(args.output) / 'docs'} (/docs) and {Path(args.output) / 'apidocs'} (/api/docs)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``conduit``."""
    parser = argparse.ArgumentParser(prog="conduit", description="Conduit GraphQL server")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the server (upgrades a SQLite database first)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--reload", action="store_true")
    serve.add_argument("--demo", action="store_true", help="seed demo data into an empty SQLite database")
    serve.add_argument("--log-level", default="info")
    serve.add_argument(
        "--log-format",
        choices=("auto", "json", "text"),
        help="log lines as JSON or text; auto: text on a terminal outside production, JSON otherwise "
        "(default: CONDUIT_LOG_FORMAT, else auto)",
    )
    serve.set_defaults(handler=_serve)

    db = commands.add_parser("db", help="database commands").add_subparsers(dest="db_command", required=True)
    db_upgrade = db.add_parser("upgrade", help="apply the Alembic migrations")
    db_upgrade.add_argument("--revision", default="head")
    db_upgrade.set_defaults(handler=_upgrade)
    db_seed = db.add_parser("seed", help="create deterministic demo data in an empty database")
    defaults = SeedPlan()
    for name in ("users", "articles", "comments", "favorites", "follows", "seed"):
        db_seed.add_argument(f"--{name}", type=int, default=getattr(defaults, name))
    db_seed.add_argument("--if-empty", action="store_true", help="succeed without seeding a non-empty database")
    db_seed.set_defaults(handler=_seed)
    db_copy = db.add_parser(
        "copy", help="copy every row into an empty database (SQLite <-> PostgreSQL), all or nothing"
    )
    db_copy.add_argument("--from", dest="source", required=True, metavar="URL", help="database to read")
    db_copy.add_argument("--to", dest="target", required=True, metavar="URL", help="empty database to fill")
    db_copy.add_argument("--batch-size", type=int, default=1000, help="rows read and written at a time")
    db_copy.set_defaults(handler=_copy)

    schema = commands.add_parser("schema", help="schema commands").add_subparsers(dest="schema_command", required=True)
    export = schema.add_parser("export", help="write the schema as SDL")
    export.add_argument("--output", "-o", default="schema.graphql")
    export.set_defaults(handler=_export_schema)

    docs = commands.add_parser("docs", help="reference pages").add_subparsers(dest="docs_command", required=True)
    docs_build = docs.add_parser(
        "build", help="build the GraphQL reference (/docs) and the REST reference page (/api/docs); needs Node and npm"
    )
    docs_build.add_argument("--schema", help="an SDL file (default: the code's schema)")
    docs_build.add_argument("--examples", default=str(EXAMPLES), help="folder of example *.graphql")
    docs_build.add_argument("--output", "-o", default=str(STATIC), help="folder to write docs/ and apidocs/ into")
    docs_build.set_defaults(handler=_build_docs)

    mail = commands.add_parser("mail", help="mail commands").add_subparsers(dest="mail_command", required=True)
    mail_list = mail.add_parser("list", help="the newest mails of mail_outbox (in development: with their links)")
    mail_list.add_argument("--limit", type=int, default=20, help="how many mails, newest first")
    mail_list.set_defaults(handler=_mail_list)

    user = commands.add_parser("user", help="user commands").add_subparsers(dest="user_command", required=True)
    set_role = user.add_parser("set-role", help="give a user a role")
    set_role.add_argument("username")
    set_role.add_argument("role", choices=[role.value for role in Role])
    set_role.set_defaults(handler=_set_role)
    listing = user.add_parser("list", help="list users, newest first")
    listing.add_argument("--search", help="the start of a username or email (any case)")
    listing.add_argument("--role", choices=[role.value for role in Role])
    suspension = listing.add_mutually_exclusive_group()
    suspension.add_argument("--suspended", action="store_true", default=None, help="only suspended users")
    suspension.add_argument(
        "--not-suspended", dest="suspended", action="store_false", help="only users who are not suspended"
    )
    listing.add_argument("--limit", type=int, default=100)
    listing.set_defaults(handler=_list_users)
    suspend = user.add_parser("suspend", help="suspend a user: tokens refused, refresh tokens revoked")
    suspend.add_argument("username")
    suspend.add_argument("--reason", required=True)
    suspend.add_argument(
        "--until", help="ISO 8601 end, e.g. 2027-01-31T12:00:00+00:00 (UTC without offset); forever if omitted"
    )
    suspend.set_defaults(handler=_suspend)
    unsuspend = user.add_parser("unsuspend", help="lift a user's suspension")
    unsuspend.add_argument("username")
    unsuspend.set_defaults(handler=_unsuspend)
    password = user.add_parser(
        "set-password", help="set a user's password (asked twice, or one line on stdin); revokes their refresh tokens"
    )
    password.add_argument("username")
    password.add_argument("--stdin", action="store_true", help="read the password from stdin even on a terminal")
    password.set_defaults(handler=_set_password)
    delete = user.add_parser("delete", help="delete a user and everything they wrote")
    delete.add_argument("username")
    delete.add_argument("--yes", action="store_true", help="confirm: this cannot be undone")
    delete.set_defaults(handler=_delete_user)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``conduit`` console script."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
        return int(args.handler(args, settings) or 0)
    except ValueError as error:
        print(f"conduit: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
