"""Helpers for the bench/ shell scripts (run with the project's .venv python).

    tools.py free-port                a free TCP port on 127.0.0.1
    tools.py port-free PORT           exit 0 if PORT is free on 127.0.0.1
    tools.py db-status URL            complete | incomplete | missing  (README scale from env USERS, ARTICLES, ...)
    tools.py checkpoint SQLITE_PATH   fold the WAL into the main file (so a plain copy is complete)
    tools.py floor-compat SQLITE_PATH give NOT NULL columns floor.py does not insert a DEFAULT (M1)
    tools.py floor-compat-pg URL on|off  the same on PostgreSQL (SET / DROP DEFAULT, around the floor's run)
    tools.py delete-m1 URL            delete the comments load.py's M1 wrote (PostgreSQL: one shared database)
    tools.py meta URL OUT.json        q2_slug, q3_tag, m1_slug, m1_user_id, f1_user_id, p1_username
                                      (and the e-mail addresses to sign in as) for load.py --meta
    tools.py meta-get META.json KEY   one value of a meta file
    tools.py login GRAPHQL_URL [EMAIL]  prints an access token for that seeded user (default: the demo user)
    tools.py wait URL [TIMEOUT] [PID] wait until URL answers (GET, or POST {__typename} for /graphql)
    tools.py report RUN_DIR OUT.md    the markdown results of run.sh / run_pg.sh
    tools.py profile-summary RAW OUT.txt TITLE   top functions and module shares of a py-spy raw profile
    tools.py profile-compare A.txt B.txt         module shares side by side (two profile summaries)

URL is a database URL: sqlite:///path or postgresql://user@host:port/db.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import os
import re
import socket
import sqlite3
import statistics
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

SCALE = {  # table -> (env var, README scale)
    "user": ("USERS", 5000),
    "article": ("ARTICLES", 50000),
    "comment": ("COMMENTS", 200000),
    "favorite": ("FAVORITES", 250000),
    "follow": ("FOLLOWS", 20000),
}
DEMO_EMAIL = "demo@conduit.example"
DEMO_PASSWORD = "conduit-demo"  # noqa: S105 - the seeded demo login (db/seed.py)


# --------------------------------------------------------------------------- database access
def _query(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    """Rows of ``sql``, whose parameters are ``?`` placeholders for ``params``."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1]
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()

    import asyncpg

    dsn = re.sub(r"^postgres(ql)?(\+asyncpg)?://", "postgresql://", url)
    numbers = itertools.count(1)
    sql = re.sub(r"\?", lambda _match: f"${next(numbers)}", sql)

    async def run() -> list[tuple]:
        con = await asyncpg.connect(dsn)
        try:
            return [tuple(r) for r in await con.fetch(sql, *params)]
        finally:
            await con.close()

    return asyncio.run(run())


def db_status(url: str) -> str:
    if url.startswith("sqlite") and not Path(url.split("///", 1)[1]).exists():
        return "missing"
    try:
        for table, (env, default) in SCALE.items():
            want = int(os.environ.get(env, default))
            (n,) = _query(url, f'SELECT count(*) FROM "{table}"')[0]  # noqa: S608 - a table name of SCALE
            if n < want:
                return "incomplete" if n or table != "user" else "missing"
    except Exception:  # no tables yet
        return "missing"
    return "complete"


def checkpoint(path: str) -> None:
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()


FLOOR_INSERTS = {"comment": {"id", "body", "article_id", "author_id", "created_at"}}


def floor_compat(path: str) -> None:
    """Let floor.py's M1 insert into our ``comment`` table (a working copy only).

    floor.py inserts only (body, article_id, author_id, created_at); our schema has more NOT NULL
    columns without a default (``updated_at``). Give those a DEFAULT in the stored DDL
    (writable_schema: a DEFAULT clause changes no stored row, only later inserts).
    """
    con = sqlite3.connect(path)
    try:
        changed = []
        for table, inserted in FLOOR_INSERTS.items():
            (sql,) = con.execute("SELECT sql FROM sqlite_master WHERE type='table' AND name=?", (table,)).fetchone()
            new = sql
            columns = con.execute(f'PRAGMA table_info("{table}")').fetchall()
            for _cid, name, ctype, notnull, default, pk in columns:
                if notnull and default is None and not pk and name not in inserted:
                    value = "CURRENT_TIMESTAMP" if "DATE" in ctype.upper() or "TIME" in ctype.upper() else "''"
                    pattern = rf"(\b{name}\s+{re.escape(ctype)}\s+NOT NULL)"
                    new, n = re.subn(pattern, rf"\1 DEFAULT {value}", new, count=1)
                    if n:
                        changed.append(f"{table}.{name} DEFAULT {value}")
            if new != sql:
                (version,) = con.execute("PRAGMA schema_version").fetchone()
                con.execute("PRAGMA writable_schema = ON")
                con.execute("UPDATE sqlite_master SET sql = ? WHERE type='table' AND name=?", (new, table))
                con.execute(f"PRAGMA schema_version = {version + 1}")
                con.execute("PRAGMA writable_schema = OFF")
                con.commit()
        (ok,) = con.execute("PRAGMA quick_check").fetchone()
        if ok != "ok":
            sys.exit(f"floor-compat broke {path}: {ok}")
        print(", ".join(changed) or "nothing to change")
    finally:
        con.close()


def meta(url: str, out: str) -> None:
    """What load.py's operations use, as shared/bench/README.md picks it: Q2 the article with the most
    comments, Q3 the most common tag, M1 the first other article as the demo user, F1 the user following
    the most authors, P1 the author with the most articles (ties: the lowest id)."""
    q2 = _query(
        url,
        "SELECT a.slug, count(*) AS n FROM article a JOIN comment c ON c.article_id = a.id "
        "GROUP BY a.id, a.slug ORDER BY n DESC, a.id LIMIT 1",
    )[0]
    q3 = _query(
        url,
        "SELECT t.name, count(*) AS n FROM tag t JOIN article_tag at ON at.tag_id = t.id "
        "GROUP BY t.id, t.name ORDER BY n DESC, t.id LIMIT 1",
    )[0]
    m1 = _query(url, "SELECT slug FROM article WHERE slug <> ? ORDER BY id LIMIT 1", (q2[0],))[0]
    uid = _query(url, 'SELECT id FROM "user" WHERE email = ?', (DEMO_EMAIL,))[0]
    # followees who have written at least one article: "authors"
    f1 = _query(
        url,
        "SELECT f.follower_id, count(*) AS n FROM follow f "
        "WHERE EXISTS (SELECT 1 FROM article a WHERE a.author_id = f.followee_id) "
        "GROUP BY f.follower_id ORDER BY n DESC, f.follower_id LIMIT 1",
    )[0]
    (f1_email,) = _query(url, 'SELECT email FROM "user" WHERE id = ?', (f1[0],))[0]
    p1 = _query(
        url,
        'SELECT u.username, count(*) AS n FROM article a JOIN "user" u ON u.id = a.author_id '
        "GROUP BY u.id, u.username ORDER BY n DESC, u.id LIMIT 1",
    )[0]
    data = {
        "q2_slug": q2[0],
        "q2_comments": q2[1],
        "q3_tag": q3[0],
        "q3_articles": q3[1],
        "m1_slug": m1[0],
        "m1_user_id": uid[0],
        "m1_email": DEMO_EMAIL,
        "f1_user_id": f1[0],
        "f1_follows": f1[1],
        "f1_email": f1_email,
        "p1_username": p1[0],
        "p1_articles": p1[1],
    }
    Path(out).write_text(json.dumps(data, indent=2) + "\n")
    print(json.dumps(data))


def meta_get(path: str, key: str) -> str:
    return str(json.loads(Path(path).read_text())[key])


M1_BODY = "A benchmark comment: lorem ipsum dolor sit amet."  # load.py's M1 variables


def _pg_execute(url: str, *statements: str) -> list[str]:
    import asyncpg

    dsn = re.sub(r"^postgres(ql)?(\+asyncpg)?://", "postgresql://", url)

    async def run() -> list[str]:
        con = await asyncpg.connect(dsn)
        try:
            return [await con.execute(sql) for sql in statements]
        finally:
            await con.close()

    return asyncio.run(run())


def delete_m1(url: str) -> None:
    """Delete M1's comments (its fixed body), so every server and every run sees the seeded data."""
    (status,) = _pg_execute(url, f"DELETE FROM comment WHERE body = '{M1_BODY}'")  # noqa: S608 - a constant
    print(status)


def floor_compat_pg(url: str, on: bool) -> None:
    """floor.py's M1 names only (body, article_id, author_id, created_at): while the floor runs,
    ``comment.updated_at`` (NOT NULL, no default: our server always sets it) gets ``DEFAULT now()``."""
    sql = "SET DEFAULT now()" if on else "DROP DEFAULT"
    _pg_execute(url, f"ALTER TABLE comment ALTER COLUMN updated_at {sql}")
    print(f"comment.updated_at {sql}")


# --------------------------------------------------------------------------- HTTP
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _post(url: str, body: dict, timeout: float = 30) -> dict:
    # the benchmark's own server, an http:// URL from its command line
    req = urllib.request.Request(  # noqa: S310 - see above
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 - see above
        return json.loads(r.read())


def login(url: str, email: str = DEMO_EMAIL) -> str:
    """An access token for a seeded user: db/seed.py gives every user the demo password."""
    doc = "mutation Login($input: LoginInput!) { login(input: $input) { token } }"
    out = _post(url, {"query": doc, "variables": {"input": {"email": email, "password": DEMO_PASSWORD}}})
    if out.get("errors"):
        sys.exit(f"login as {email} failed: {out['errors']}")
    return out["data"]["login"]["token"]


def wait(url: str, timeout: float = 60, pid: int | None = None) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if pid is not None and not Path(f"/proc/{pid}").exists():
            sys.exit(f"process {pid} exited before {url} answered")
        try:
            if url.endswith("/graphql"):
                _post(url, {"query": "{ __typename }"}, timeout=5)
            else:
                urllib.request.urlopen(url, timeout=5).read()  # noqa: S310 - the server under test
            return
        except (OSError, urllib.error.URLError, ValueError):
            time.sleep(0.3)
    sys.exit(f"{url} did not answer within {timeout:.0f} s")


# --------------------------------------------------------------------------- report
DASH = "\u2013"  # an empty cell
SERVER_NAMES = {
    "ours": "ours (conduit serve)",
    "ours-redis": "ours, budget in Redis",
    "ours-nobudget": "ours, budget off",
    "floor": "floor.py",
    "postgraphile": "PostGraphile 5",
}


def info(out: str) -> None:
    """info.json for ``report`` from the INFO_* environment variables the run scripts set."""
    e = os.environ
    notes = {
        "method": e.get("INFO_METHOD", ""),
        "data": e.get("INFO_DATA", ""),
        "load average (1/5/15 min; a run itself keeps about 2 busy)": e.get("INFO_LOAD", ""),
        "peak RSS over the whole run (VmHWM)": e.get("INFO_HWM", "").strip().rstrip(";"),
        "schema adaptation for floor.py": e.get("INFO_COMPAT", ""),
        **json.loads(e.get("INFO_NOTES") or "{}"),
    }
    fails = e.get("INFO_FAILS", "").strip()
    extra = [x for x in e.get("INFO_EXTRA", "").split("\x1e") if x.strip()]
    data = {
        "title": e.get("INFO_TITLE", "benchmark"),
        "servers": e.get("INFO_SERVERS", "ours floor").split(),
        "server_names": SERVER_NAMES,
        "rows": [[*r.split(), ""][:3] for r in e.get("INFO_ROWS", "").splitlines() if r.strip()],
        "raw": e.get("INFO_RAW", "results.jsonl"),
        "notes": {k: v for k, v in notes.items() if v},
        "extra_sections": [*extra, *(["## Failures\n\n" + fails] if fails else [])],
    }
    Path(out).write_text(json.dumps(data, indent=2) + "\n")


def _fmt(v, spec: str = ",.0f", none: str = DASH) -> str:
    return none if v is None else format(v, spec)


def _ratio(a, b) -> str:
    if not a or not b:
        return DASH
    r = a / b
    return f"{r:.2f}" + (f" (1/{1 / r:.1f})" if r < 1 else "")


def _load_results(run_dir: Path) -> dict:
    """label -> {"load": {...}, "seq": {...}}; label = server:op:viewer[:variant]."""
    res: dict = collections.defaultdict(dict)
    path = run_dir / "results.jsonl"
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                res[r["label"]][r["mode"]] = r
    return res


def _rss(run_dir: Path, label: str):
    p = run_dir / f"rss-{label.replace(':', '_')}.txt"
    try:
        return int(p.read_text().split()[0]) / 1024
    except (OSError, ValueError, IndexError):
        return None


def _errors(r: dict) -> str:
    """Errors over requests of one label's load and seq runs (an en dash when nothing was measured)."""
    ld, sq = r.get("load", {}), r.get("seq", {})
    reqs = (ld.get("requests") or 0) + (sq.get("n") or 0)
    if not reqs:
        return DASH
    return f"{(ld.get('errors') or 0) + (sq.get('errors') or 0)}/{reqs}"


def report(run_dir: str, out: str) -> None:
    rd = Path(run_dir)
    info = json.loads((rd / "info.json").read_text())
    metas = json.loads((rd / "meta.json").read_text())
    res = _load_results(rd)
    servers: list[str] = info["servers"]
    names = info.get("server_names", {})
    lines = [f"# {info['title']}", ""]
    lines += [f"- {k}: {v}" for k, v in info.get("notes", {}).items()]
    lines += [
        f"- meta: Q2 `{metas['q2_slug']}` ({metas.get('q2_comments')} comments), Q3 tag `{metas['q3_tag']}` "
        f"({metas.get('q3_articles')} articles), M1 `{metas['m1_slug']}` as user {metas['m1_user_id']}, "
        f"F1 as user {metas.get('f1_user_id')} (follows {metas.get('f1_follows')} authors), "
        f"P1 `{metas.get('p1_username')}` ({metas.get('p1_articles')} articles)",
        f"- viewer: anon = no credentials; auth = signed in (ours: a token from the `login` mutation; "
        f"the floor: `x-user-id`) as user {metas['m1_user_id']} (the demo user), except F1, signed in as "
        f"user {metas.get('f1_user_id')}; F1 has no anonymous run (a feed needs a viewer)",
        "",
        "rps: median of the repeated wrk runs (lowest and highest run in brackets); "
        "load p50/p99: wrk latency at that concurrency (medians); "
        "seq p50/p99: single requests one after another on one keep-alive connection; errors: non-200 or "
        "`errors` in the body, summed over all runs; SQL/req: statements per request from `/__stats`; "
        "RSS: peak VmRSS of the server process (MiB) sampled during that operation's load "
        "(PostgreSQL backends not included).",
        "",
        "| op | viewer | server | rps | load p50 ms | load p99 ms | seq p50 ms | seq p99 ms "
        "| errors | SQL/req | RSS MiB |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    rows = info["rows"]  # [op, viewer, variant] in order
    att = rd / "attempted.txt"
    attempted = set(att.read_text().split()) if att.exists() else set()
    for op, viewer, variant in rows:
        for s in servers:
            label = ":".join(x for x in (s, op, viewer, variant) if x)
            r = res.get(label)
            if not r:
                if label in attempted:
                    lines.append(
                        f"| {op}{' ' + variant if variant else ''} | {viewer} | {names.get(s, s)} "
                        + " ".join(["|", *[DASH, "|"] * 5, "**failed validation** |", *[DASH, "|"] * 2])
                    )
                continue
            ld, sq = r.get("load", {}), r.get("seq", {})
            sql = ld.get("sql_per_request", sq.get("sql_per_request"))
            errs = (ld.get("errors") or 0) + (sq.get("errors") or 0)
            reqs = (ld.get("requests") or 0) + (sq.get("n") or 0)
            err_cell = f"{errs}/{reqs}"
            if ld and not ld.get("requests"):
                err_cell = "**no response during the runs**"
            elif not ld and not sq:
                err_cell = "**failed validation**"
            rps_cell = _fmt(ld.get("rps"))
            runs = [x.get("rps") or 0 for x in ld.get("runs", [])]
            if ld and not ld.get("requests"):  # wrk saw no response at all: no latency either
                ld = {k: v for k, v in ld.items() if k not in ("p50_ms", "p99_ms")}
            elif len(runs) > 1:
                rps_cell += f" ({min(runs):,.0f}{DASH}{max(runs):,.0f})"
            lines.append(
                f"| {op}{' ' + variant if variant else ''} | {viewer} | {names.get(s, s)} | {rps_cell} "
                f"| {_fmt(ld.get('p50_ms'), '.1f')} | {_fmt(ld.get('p99_ms'), '.1f')} "
                f"| {_fmt(sq.get('p50_ms'), '.2f')} | {_fmt(sq.get('p99_ms'), '.2f')} "
                f"| {err_cell} | {_fmt(sql, '.1f')} | {_fmt(_rss(rd, label), '.0f')} |"
            )
    base = servers[0]
    for ref in servers[1:]:
        lines += [
            "",
            f"## Ratios: {names.get(base, base)} / {names.get(ref, ref)}",
            "",
            "Throughput: ours rps ÷ theirs (higher is better, 1/x = x times slower). "
            "Latency: ours seq p50 ÷ theirs (lower is better). Errors: load and seq together, ours / theirs.",
            "",
            "| op | viewer | ours rps | their rps | throughput ratio | ours seq p50 | their seq p50 | p50 ratio "
            "| errors ours / theirs |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for op, viewer, variant in rows:
            la, lb = (":".join(x for x in (key, op, viewer, variant) if x) for key in (base, ref))
            a, b = res.get(la, {}), res.get(lb, {})
            if not (a or la in attempted) or not (b or lb in attempted):
                continue  # a server that does not run this operation (PostGraphile: F1, P1, O1, M1, signed in)
            ra, rb = a.get("load", {}).get("rps"), b.get("load", {}).get("rps")
            pa, pb = a.get("seq", {}).get("p50_ms"), b.get("seq", {}).get("p50_ms")
            lines.append(
                f"| {op}{' ' + variant if variant else ''} | {viewer} | {_fmt(ra)} | {_fmt(rb)} | {_ratio(ra, rb)} "
                f"| {_fmt(pa, '.2f')} | {_fmt(pb, '.2f')} | {_fmt(pa / pb if pa and pb else None, '.2f')} "
                f"| {_errors(a) if a else 'failed'} / {_errors(b) if b else 'failed'} |"
            )
    for extra in info.get("extra_sections", []):
        lines += ["", extra]
    lines += ["", f"Raw results: `{info.get('raw', 'results.jsonl')}` (one load.py JSON line per measurement)."]
    Path(out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def workers_section(run_dir: str, label_1w: str, label_2w: str, label_1w_pinned: str) -> str:
    res = _load_results(Path(run_dir))
    g = lambda lab: res.get(lab, {}).get("load", {}).get("rps")  # noqa: E731
    one, two, pinned = g(label_1w), g(label_2w), g(label_1w_pinned)
    return "\n".join(
        [
            "## Q1 with `--workers 2` (anonymous)",
            "",
            "Unpinned: the server processes and PostgreSQL may use both cores (wrk still on core 1, so it "
            "competes with them); not comparable with the pinned rows above except as the ratio shown.",
            "",
            "| setup | rps | ratio |",
            "| --- | ---: | ---: |",
            f"| 1 worker, unpinned | {_fmt(one)} | 1.00 |",
            f"| 2 workers, unpinned | {_fmt(two)} | {_fmt(two / one if one and two else None, '.2f')} |",
            f"| 1 worker, pinned to core 0 (from above) | {_fmt(pinned)} | "
            f"{_fmt(pinned / one if one and pinned else None, '.2f')} |",
        ]
    )


# --------------------------------------------------------------------------- profiles
CATEGORIES = [  # (module share, path fragment); first match wins
    ("graphql-core", "/graphql/"),
    ("strawberry", "/strawberry/"),
    ("sqlmodel", "/sqlmodel/"),
    ("sqlalchemy", "/sqlalchemy/"),
    ("aiosqlite (incl. SQLite C in its thread)", "/aiosqlite/"),
    ("asyncpg", "/asyncpg/"),
    ("starlette/uvicorn", "/starlette/"),
    ("starlette/uvicorn", "/uvicorn/"),
    ("starlette/uvicorn", "/httptools/"),
    ("starlette/uvicorn", "/uvloop/"),
    ("pydantic", "/pydantic"),
    ("jwt/argon2", "/jwt/"),
    ("jwt/argon2", "/argon2/"),
    ("prometheus", "/prometheus_client/"),
    ("json", "/json/"),
    ("json", "orjson"),
    ("asyncio", "/asyncio/"),
    ("logging", "/logging/"),
]
OURS = ("graph", "db", "auth")
FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _category(file: str, func: str = "") -> str:
    path = "/" + file  # py-spy shortens paths to "package/module.py"
    for top in OURS:
        if f"/work/main/{top}/" in path or file.startswith(f"{top}/"):
            return f"ours: {top}/"
    if func == "Runner.run" and file.endswith("asyncio/runners.py"):
        return "event loop (uvloop, httptools: C)"  # time in C under loop.run_until_complete
    for name, frag in CATEGORIES:
        if frag in path:
            return name
    top = file.split("/", 1)[0].removesuffix(".py")
    if "/lib/python" in file or file.startswith("<frozen") or top in sys.stdlib_module_names:
        return "python stdlib (other)"
    if "/" not in file and not file.endswith(".py"):
        return "process entry (scripts)"
    return "other packages"


def _short(file: str) -> str:
    for marker in ("site-packages/", "/work/main/", "/lib/python3.11/", "/lib/python3.12/"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file


def _parse_frame(frame: str) -> tuple[str, str, str]:
    m = FRAME.match(frame.strip())
    if not m:
        return frame, "", ""
    return m["func"], m["file"] or "", m["line"] or ""


def profile_summary(raw: str, out: str, title: str, top: int = 30) -> None:
    """py-spy ``--format raw`` (collapsed stacks: ``thread;frame;frame count``) -> text summary."""
    own: collections.Counter = collections.Counter()
    total: collections.Counter = collections.Counter()
    own_cat: collections.Counter = collections.Counter()
    total_cat: collections.Counter = collections.Counter()
    threads: collections.Counter = collections.Counter()
    n = 0
    for line in Path(raw).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        c = int(count)
        frames = stack.split(";")
        if frames and not FRAME.match(frames[0].strip()):  # py-spy puts "thread (0x..)" / process first
            threads[frames[0].split(" (")[0]] += c
            frames = frames[1:]
        if not frames:
            continue
        n += c
        parsed = [_parse_frame(f) for f in frames]
        func, file, _line = parsed[-1]
        own[f"{func} ({_short(file)})"] += c
        own_cat[_category(file, func)] += c
        for key in {f"{fn} ({_short(fl)})" for fn, fl, _ in parsed}:
            total[key] += c
        for cat in {_category(fl, fn) for fn, fl, _ in parsed}:
            total_cat[cat] += c
    if not n:
        sys.exit(f"no samples in {raw}")
    pct = lambda x: f"{100 * x / n:5.1f}%"  # noqa: E731
    lines = [title, f"samples: {n} (non-idle, all threads)", ""]
    if len(threads) > 1:
        lines += ["threads:"] + [f"  {pct(c)}  {t}" for t, c in threads.most_common(8)] + [""]
    lines += [
        "module shares (own = leaf frame in that module; total = module anywhere on the stack):",
        "   own     total   module",
    ]
    for cat in sorted(set(own_cat) | set(total_cat), key=lambda k: -own_cat[k]):
        lines.append(f"  {pct(own_cat[cat])}  {pct(total_cat[cat])}   {cat}")
    lines += ["", f"top {top} functions by own time:"]
    lines += [f"  {pct(c)}  {k}" for k, c in own.most_common(top)]
    lines += ["", f"top {top} functions by total time:"]
    lines += [f"  {pct(c)}  {k}" for k, c in total.most_common(top)]
    Path(out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines[: 4 + len(lines) // 3]))


def _shares(path: str) -> dict[str, tuple[float, float]]:
    out, on = {}, False
    for line in Path(path).read_text().splitlines():
        if line.startswith("module shares"):
            on = True
            continue
        if on:
            m = re.match(r"\s+([\d.]+)%\s+([\d.]+)%\s+(.+)$", line)
            if m:
                out[m[3].strip()] = (float(m[1]), float(m[2]))
            elif not line.strip():
                break
    return out


def profile_compare(a: str, b: str) -> None:
    sa, sb = _shares(a), _shares(b)
    print(f"{'module':<22} {'own A':>7} {'own B':>7} {'total A':>8} {'total B':>8}")
    for k in sorted(set(sa) | set(sb), key=lambda k: -max(sa.get(k, (0, 0))[0], sb.get(k, (0, 0))[0])):
        oa, ta = sa.get(k, (0.0, 0.0))
        ob, tb = sb.get(k, (0.0, 0.0))
        print(f"{k:<22} {oa:6.1f}% {ob:6.1f}% {ta:7.1f}% {tb:7.1f}%")
    print(f"\nA = {a}\nB = {b}")


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit(__doc__)
    cmd, args = argv[0], argv[1:]
    if cmd == "free-port":
        print(free_port())
    elif cmd == "port-free":
        sys.exit(0 if port_free(int(args[0])) else 1)
    elif cmd == "db-status":
        print(db_status(args[0]))
    elif cmd == "checkpoint":
        checkpoint(args[0])
    elif cmd == "floor-compat":
        floor_compat(args[0])
    elif cmd == "meta":
        meta(args[0], args[1])
    elif cmd == "floor-compat-pg":
        floor_compat_pg(args[0], args[1] == "on")
    elif cmd == "delete-m1":
        delete_m1(args[0])
    elif cmd == "meta-get":
        print(meta_get(args[0], args[1]))
    elif cmd == "login":
        print(login(*args[:2]))
    elif cmd == "wait":
        wait(args[0], float(args[1]) if len(args) > 1 else 60, int(args[2]) if len(args) > 2 else None)
    elif cmd == "report":
        report(args[0], args[1])
    elif cmd == "info":
        info(args[0])
    elif cmd == "workers-section":
        print(workers_section(*args))
    elif cmd == "profile-summary":
        profile_summary(args[0], args[1], args[2])
    elif cmd == "profile-compare":
        profile_compare(args[0], args[1])
    elif cmd == "median":
        print(statistics.median(float(x) for x in args))
    else:
        sys.exit(f"unknown command {cmd}\n{__doc__}")


if __name__ == "__main__":
    main(sys.argv[1:])
