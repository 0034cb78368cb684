"""Does ``requestPasswordReset`` take the same time for known and unknown emails? In process.

    PYTHONPATH=. .venv/bin/python bench/reset_timing.py [--rounds 5] [--pairs 200] [--database-url URL] [--worker]

Each round sends ``--pairs`` triplets through the ASGI app: a known email, an unknown one and a
second unknown one, in a random order within each triplet, every request from its own client
address and every email used at most 4 times in the run (under the 5 per email and 20 per
address limits: no request is refused). Requests of one triplet run back to back, so the
machine's load drifts little between them: the median of the known - unknown differences within
triplets is the A/B difference, and that of the two unknown ones the A/A difference, the noise
floor an A/B difference must clear to mean anything (each with its bootstrap standard deviation).
Per round it also prints the median and p90 of each kind in microseconds. With ``--worker`` the
mail worker runs as in a server (mails logged, the log discarded), so its rendering of known
addresses' mails competes with the requests as it would in production.

The default database is a fresh SQLite file in a temporary directory; with ``--database-url``,
an empty migrated database (PostgreSQL: ``conduit db upgrade`` first).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from asgi_client import post_graphql, response_body  # bench/ is the script's own directory

from auth.passwords import hash_password
from db.migrate import upgrade
from db.models import Role, user_table, utcnow
from graph.app import create_app
from graph.settings import Settings

QUERY = "mutation R($e: String!) { requestPasswordReset(email: $e) }"
USES_PER_EMAIL = 4


async def request_reset(app: Any, email: str, client: str) -> float:
    """One ``requestPasswordReset`` through the ASGI app from ``client``; its time in seconds."""
    body = orjson.dumps({"query": QUERY, "variables": {"e": email}})
    started = time.perf_counter()
    messages = await post_graphql(app, body, client=(client, 40000))
    elapsed = time.perf_counter() - started
    answer = orjson.loads(response_body(messages))
    if answer != {"data": {"requestPasswordReset": True}}:
        raise SystemExit(f"unexpected answer for {email}: {answer}")
    return elapsed


def median_p90(samples: list[float]) -> tuple[float, float]:
    """The median and 90th percentile of ``samples`` in microseconds."""
    ordered = sorted(samples)
    return statistics.median(ordered) * 1e6, ordered[int(0.9 * (len(ordered) - 1))] * 1e6


def median_error(samples: list[float], rng: random.Random, resamples: int = 300) -> float:
    """The bootstrap standard deviation of the median of ``samples``, in microseconds."""
    medians = [statistics.median(rng.choices(samples, k=len(samples))) for _ in range(resamples)]
    return statistics.pstdev(medians) * 1e6


async def add_users(app: Any, count: int) -> list[str]:
    """``count`` accounts inserted directly (one password hash for all); their emails."""
    password_hash = hash_password("bench-password")
    now = utcnow()
    emails = [f"known{n}@bench.example" for n in range(count)]
    rows = [
        {
            "username": f"known{n}",
            "email": email,
            "password_hash": password_hash,
            "role": Role.USER.value,
            "created_at": now,
            "updated_at": now,
        }
        for n, email in enumerate(emails)
    ]
    async with app.state.conduit.db.engine.begin() as connection:
        await connection.execute(sa.insert(user_table), rows)
    return emails


async def run(args: argparse.Namespace, database_url: str) -> None:
    settings = Settings(
        env="test",
        database_url=database_url,
        jwt_secret="b" * 40,  # a throwaway key for a throwaway database
        password_hash_profile="cheapest",  # noqa: S106 - no password is checked here
    )
    app = create_app(settings)
    logging.getLogger("conduit").setLevel(logging.WARNING)  # the mails, the audit lines
    rng = random.Random(args.seed)  # noqa: S311 - the order of requests, not a secret
    per_round = -(-args.pairs // USES_PER_EMAIL)  # emails per kind per round
    known = await add_users(app, per_round * (args.rounds + 1))
    unknown = [f"unknown{n}@bench.example" for n in range(len(known))]
    other = [f"other{n}@bench.example" for n in range(len(known))]
    clients = (f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}" for n in range(1, 1 << 24))
    mail = app.state.conduit.mail
    if args.worker:
        mail.start()
    try:
        # warm-up: plans, caches, connections, the first rendering; then the measured rounds
        for n in range(per_round):
            for _ in range(USES_PER_EMAIL):
                for email in (known[n], unknown[n], other[n]):
                    await request_reset(app, email, next(clients))
        print(f"{'round':>5} {'known median':>13} {'p90':>7} {'unknown median':>15} {'p90':>7}", end="")
        print(f" {'A/B paired':>11} {'A/A paired':>11}  (microseconds)")
        all_ab: list[float] = []
        all_aa: list[float] = []
        for round_number in range(1, args.rounds + 1):
            emails = slice(round_number * per_round, (round_number + 1) * per_round)
            triplets = list(zip(known[emails], unknown[emails], other[emails], strict=True)) * USES_PER_EMAIL
            rng.shuffle(triplets)
            times: dict[str, list[float]] = {"known": [], "unknown": [], "other": []}
            for known_email, unknown_email, other_email in triplets[: args.pairs]:
                order = [("known", known_email), ("unknown", unknown_email), ("other", other_email)]
                rng.shuffle(order)
                for kind, email in order:
                    times[kind].append(await request_reset(app, email, next(clients)))
            ab = [k - u for k, u in zip(times["known"], times["unknown"], strict=True)]
            aa = [o - u for o, u in zip(times["other"], times["unknown"], strict=True)]
            all_ab += ab
            all_aa += aa
            known_median, known_p90 = median_p90(times["known"])
            unknown_median, unknown_p90 = median_p90(times["unknown"])
            print(
                f"{round_number:>5} {known_median:>13.0f} {known_p90:>7.0f} {unknown_median:>15.0f}"
                f" {unknown_p90:>7.0f} {statistics.median(ab) * 1e6:>+11.0f} {statistics.median(aa) * 1e6:>+11.0f}"
            )
        ab_median, aa_median = statistics.median(all_ab) * 1e6, statistics.median(all_aa) * 1e6
        ab_error, aa_error = median_error(all_ab, rng), median_error(all_aa, rng)
        print(
            f"A/B (known - unknown, within each triplet): median {ab_median:+.0f} us, bootstrap stdev {ab_error:.0f} us"
        )
        print(
            f"A/A (unknown - unknown, the noise floor):   median {aa_median:+.0f} us, bootstrap stdev {aa_error:.0f} us"
        )
    finally:
        await mail.stop()
        await app.state.conduit.broker.close()
        await app.state.conduit.db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pairs", type=int, default=200, help="known/unknown/unknown triplets per round")
    parser.add_argument("--database-url", help="an empty migrated database (default: a fresh SQLite file)")
    parser.add_argument("--worker", action="store_true", help="run the mail worker beside the requests")
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    if args.database_url:
        asyncio.run(run(args, args.database_url))
        return
    with tempfile.TemporaryDirectory(prefix="reset-timing-") as directory:
        url = f"sqlite:///{Path(directory) / 'bench.db'}"
        upgrade(url)
        asyncio.run(run(args, url))


if __name__ == "__main__":
    main()
