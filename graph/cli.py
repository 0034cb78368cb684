"""The ``conduit`` command: serve, database upgrade and seed, schema export, mail, user roles."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from auth.passwords import hash_password
from db.engine import Database, is_sqlite_url
from db.migrate import upgrade
from db.models import Role
from db.seed import DEMO_EMAIL, DEMO_PASSWORD, SeedPlan, is_empty, seed, timed_seed_message
from db.users import change_role
from graph.settings import Settings

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
    settings.resolve_smtp()  # ... or no mail server (account mails must be delivered, not logged)
    url = f"http://{args.host}:{args.port}/graphql"
    print(f"Conduit GraphQL on {settings.database_url}", flush=True)
    if settings.playground_enabled:
        print(f"Playground: {url}", flush=True)
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
        db = Database(settings.database_url)
        session = db.session()
        try:
            async with db.transaction(session):
                change = await change_role(session=session, username=args.username, role=Role(args.role))
        finally:
            await session.close()
            await db.dispose()
        if change is None:
            print(f"no user named {args.username!r}", file=sys.stderr)
            return 1
        old, new = change.old_role.value, change.new_role.value
        audit("role_changed", source="cli", target_user_id=change.user_id, old_role=old, new_role=new)
        print(f"{args.username} is now {new}")
        return 0

    return asyncio.run(run())


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

    mail = commands.add_parser("mail", help="mail commands").add_subparsers(dest="mail_command", required=True)
    mail_list = mail.add_parser("list", help="the newest mails of mail_outbox (in development: with their links)")
    mail_list.add_argument("--limit", type=int, default=20, help="how many mails, newest first")
    mail_list.set_defaults(handler=_mail_list)

    user = commands.add_parser("user", help="user commands").add_subparsers(dest="user_command", required=True)
    set_role = user.add_parser("set-role", help="give a user a role")
    set_role.add_argument("username")
    set_role.add_argument("role", choices=[role.value for role in Role])
    set_role.set_defaults(handler=_set_role)
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
