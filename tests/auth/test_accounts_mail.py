"""Password reset and email verification through real mail (contract-next, Accounts).

Every test goes through the real ``/graphql`` endpoint and a real SMTP server (aiosmtpd, in
process on 127.0.0.1), and follows the token of the link in the mail the server received.
The mail worker runs as the app's lifespan would run it (``worker``), or one round at a time
(``MailWorker.run_once``) where a test must know that nothing more will come.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import hashlib
import logging
import re
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from pydantic import SecretStr

from auth.mail import MailWorker, SmtpServer, in_words, link, render
from db.models import account_token_table, mail_outbox_table, user_table, utcnow
from graph.app import create_app
from graph.cli import main
from graph.settings import Settings
from tests.conftest import GQL, User, sql_of
from tests.waiting import until

PUBLIC_URL = "https://conduit.example"
REQUEST_RESET = "mutation R($e: String!) { requestPasswordReset(email: $e) }"
RESET = "mutation P($t: String!, $p: String!) { resetPassword(token: $t, password: $p) { token refreshToken user { username } } }"
REQUEST_VERIFICATION = "mutation { requestEmailVerification }"
VERIFY = "mutation V($t: String!) { verifyEmail(token: $t) { username } }"
LOGIN = "mutation L($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { token } }"
REFRESH = "mutation F($t: String!) { refreshToken(refreshToken: $t) { token } }"
UPDATE_EMAIL = "mutation U($e: String!) { updateViewer(input: {email: $e}) { username } }"
VIEWER = "{ viewer { username } }"
LINK = re.compile(re.escape(PUBLIC_URL) + r"/(reset-password|verify-email)\?token=([A-Za-z0-9_-]{43})")


class Inbox:
    """An aiosmtpd handler keeping every message it accepts (on the server's thread)."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self.messages.append(message)
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        with self._lock:
            return [message for message in self.messages if message["To"] == address]

    async def wait_for(self, address: str, count: int = 1) -> EmailMessage:
        """The ``count``-th mail to ``address``, once it has arrived."""
        await until(lambda: len(self.to(address)) >= count, f"{count} mail(s) to {address}")
        return self.to(address)[count - 1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def smtp_server(port: int) -> tuple[Controller, Inbox]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    return controller, inbox


@pytest.fixture
def smtp() -> Iterator[tuple[int, Inbox]]:
    """A real SMTP server on 127.0.0.1: its port and what it received."""
    port = free_port()
    controller, inbox = smtp_server(port)
    try:
        yield port, inbox
    finally:
        controller.stop()


@pytest.fixture
def inbox(smtp: tuple[int, Inbox]) -> Inbox:
    return smtp[1]


@pytest.fixture
def settings(settings: Settings, smtp: tuple[int, Inbox]) -> Settings:
    """The suite's settings, mailing through the test's SMTP server."""
    return settings.model_copy(update={"smtp_url": SecretStr(f"smtp://127.0.0.1:{smtp[0]}"), "public_url": PUBLIC_URL})


@pytest.fixture
async def worker(app: Any) -> AsyncIterator[MailWorker]:
    """The app's mail worker, running as the lifespan runs it (ASGITransport runs no lifespan)."""
    mail: MailWorker = app.state.conduit.mail
    mail.start()
    yield mail
    await mail.stop()


def parts(message: EmailMessage) -> tuple[str, str]:
    """The plain-text and HTML bodies of a mail."""
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None, message
    return str(text.get_content()), str(html.get_content())


def token_in(message: EmailMessage, route: str) -> str:
    """The token of the mail's link to ``route``, the same in both parts."""
    text, html = parts(message)
    found = LINK.search(text)
    assert found is not None and found.group(1) == route, text
    assert f'<a href="{found.group(0)}">' in html
    return found.group(2)


async def rows(app: Any, table: sa.Table) -> list[Any]:
    async with app.state.conduit.db.engine.connect() as connection:
        return list(await connection.execute(sa.select(table).order_by(*table.primary_key.columns)))


async def execute(app: Any, statement: Any) -> None:
    async with app.state.conduit.db.engine.begin() as connection:
        await connection.execute(statement)


async def email_verified(gql: GQL, user: User) -> bool:
    """``viewer { emailVerified }`` as the user reads it."""
    verified: bool = (await gql.ok("{ viewer { emailVerified } }", token=user.token))["viewer"]["emailVerified"]
    return verified


async def reset_token(gql: GQL, inbox: Inbox, user: User, count: int = 1) -> str:
    assert (await gql.ok(REQUEST_RESET, {"e": user.email}))["requestPasswordReset"] is True
    return token_in(await inbox.wait_for(user.email, count), "reset-password")


async def test_a_mailed_reset_link_sets_a_new_password_once_and_ends_every_session(
    gql: GQL, app: Any, alice: User, inbox: Inbox, worker: MailWorker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="conduit.audit")
    # typed differently, delivered to the address the account has
    answer = await gql.ok(REQUEST_RESET, {"e": "  ALICE@Example.com "})
    assert answer == {"requestPasswordReset": True}
    message = await inbox.wait_for(alice.email)
    assert message["Subject"] == "Reset your Conduit password" and message["From"] == "Conduit <no-reply@localhost>"
    token = token_in(message, "reset-password")
    assert "30 minutes" in parts(message)[0]

    reset = (await gql.ok(RESET, {"t": token, "p": "brand-new-password"}))["resetPassword"]
    assert reset["user"] == {"username": "alice"}
    assert (await gql.ok(VIEWER, token=reset["token"]))["viewer"] == {"username": "alice"}
    assert (await gql.ok(REFRESH, {"t": reset["refreshToken"]}))["refreshToken"]["token"]
    assert (await gql.ok(LOGIN, {"e": alice.email, "p": "brand-new-password"}))["login"]["token"]
    assert (await gql(LOGIN, {"e": alice.email, "p": alice.password})).codes == ["UNAUTHENTICATED"]
    assert (await gql(REFRESH, {"t": alice.refresh_token})).codes == ["UNAUTHENTICATED"]  # revoked

    again = await gql(RESET, {"t": token, "p": "another-password"})
    assert again.codes == ["BAD_USER_INPUT"] and again.error_fields() == {"token": ["is invalid or has expired"]}

    # at rest: the token's hash only, and the sent mail without its bodies
    (stored,) = await rows(app, account_token_table)
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest() and stored.used_at is not None
    assert stored.purpose == "password_reset" and stored.email == alice.email
    (sent,) = await rows(app, mail_outbox_table)
    assert sent.sent_at is not None and sent.attempts == 1 and sent.recipient == alice.email
    assert sent.text_body is None and sent.html_body is None
    assert all(token not in record.getMessage() for record in caplog.records)

    audit = {record.__dict__["event"]: record.__dict__ for record in caplog.records if record.name == "conduit.audit"}
    requested = audit["password_reset_requested"]
    assert requested["email_hash"] == hashlib.sha256(b"alice@example.com").hexdigest()[:12]
    assert requested["client"] == "127.0.0.1" and "alice@" not in requested["msg"] % requested["args"]
    assert audit["password_reset_done"]["user_id"] == stored.user_id
    assert audit["password_reset_done"]["sessions_revoked"] >= 1


async def test_reset_refuses_expired_unknown_and_other_purpose_tokens(
    gql: GQL, app: Any, alice: User, inbox: Inbox, worker: MailWorker
) -> None:
    token = await reset_token(gql, inbox, alice)
    await execute(app, sa.update(account_token_table).values(expires_at=utcnow() - dt.timedelta(seconds=1)))
    for bad in (token, "x" * 43, ""):
        response = await gql(RESET, {"t": bad, "p": "brand-new-password"})
        assert response.codes == ["BAD_USER_INPUT"] and response.error_fields() == {
            "token": ["is invalid or has expired"]
        }
    weak = await gql(RESET, {"t": token, "p": "short"})
    assert weak.codes == ["BAD_USER_INPUT"] and list(weak.error_fields()) == ["password"]

    # a verification token does not reset a password, nor a reset token verify an email
    assert (await gql.ok(REQUEST_VERIFICATION, token=alice.token))["requestEmailVerification"] is True
    verification = token_in(await inbox.wait_for(alice.email, 2), "verify-email")
    assert (await gql(RESET, {"t": verification, "p": "brand-new-password"})).codes == ["BAD_USER_INPUT"]
    fresh = await reset_token(gql, inbox, alice, count=3)
    assert (await gql(VERIFY, {"t": fresh})).codes == ["BAD_USER_INPUT"]
    assert (await gql.ok(LOGIN, {"e": alice.email, "p": alice.password}))["login"]["token"]


async def test_an_older_reset_link_dies_with_the_one_used(
    gql: GQL, alice: User, inbox: Inbox, worker: MailWorker
) -> None:
    first = await reset_token(gql, inbox, alice)
    second = await reset_token(gql, inbox, alice, count=2)
    await gql.ok(RESET, {"t": second, "p": "brand-new-password"})
    assert (await gql(RESET, {"t": first, "p": "other-new-password"})).codes == ["BAD_USER_INPUT"]


async def test_a_suspended_user_gets_no_tokens_from_a_reset(
    gql: GQL, app: Any, alice: User, inbox: Inbox, worker: MailWorker
) -> None:
    token = await reset_token(gql, inbox, alice)
    await execute(app, sa.update(user_table).values(suspended_at=utcnow(), suspension_reason="spam"))
    refused = await gql(RESET, {"t": token, "p": "brand-new-password"})
    assert refused.codes == ["UNAUTHENTICATED"] and refused.errors[0]["message"] == "account suspended"
    assert refused.data is None
    await execute(app, sa.update(user_table).values(suspended_at=None, suspension_reason=None))
    assert (await gql.ok(LOGIN, {"e": alice.email, "p": alice.password}))["login"]["token"]  # unchanged
    # an expired suspension is none: the (unspent) link works again
    await execute(app, sa.update(user_table).values(suspended_at=utcnow(), suspended_until=utcnow()))
    assert (await gql.ok(RESET, {"t": token, "p": "brand-new-password"}))["resetPassword"]["token"]


async def test_an_unknown_email_gets_the_same_answer_and_statements_and_no_mail(
    gql: GQL, app: Any, alice: User, inbox: Inbox
) -> None:
    mail: MailWorker = app.state.conduit.mail
    await gql.ok(REQUEST_RESET, {"e": "warm-up@example.com"})  # plans and caches, as for any first request
    answers, statements = [], []
    for address in (alice.email, "nobody@example.com"):
        with sql_of(app) as seen:
            answers.append(await gql(REQUEST_RESET, {"e": address}))
        statements.append(seen)
    assert answers[0].body == answers[1].body == {"data": {"requestPasswordReset": True}}
    assert statements[0] == statements[1] and statements[0]  # no account enumeration by timing either

    done = await mail.run_once()
    assert (done.sent, done.dropped, done.failed) == (1, 2, 0)
    assert [message["To"] for message in inbox.messages] == [alice.email]
    assert [row.recipient for row in await rows(app, mail_outbox_table)] == [alice.email]
    assert len(await rows(app, account_token_table)) == 1


async def test_reset_requests_are_limited_per_email_and_per_client_address(
    gql: GQL, app: Any, alice: User, inbox: Inbox
) -> None:
    for address in (alice.email, "nobody@example.com"):  # the same for an address no account has
        for _ in range(5):
            assert (await gql.ok(REQUEST_RESET, {"e": address}))["requestPasswordReset"] is True
        limited = await gql(REQUEST_RESET, {"e": address.upper()})
        assert limited.codes == ["RATE_LIMITED"] and limited.data is None
        assert 3500 < limited.errors[0]["extensions"]["retryAfter"] <= 3600
    for n in range(10):  # 20 requests from this client address in all
        await gql.ok(REQUEST_RESET, {"e": f"someone{n}@example.com"})
    assert (await gql(REQUEST_RESET, {"e": "one-more@example.com"})).codes == ["RATE_LIMITED"]
    other_client = httpx.ASGITransport(app=app, client=("127.0.0.2", 50000))
    async with httpx.AsyncClient(transport=other_client, base_url="http://testserver") as http:
        assert (await GQL(http).ok(REQUEST_RESET, {"e": "one-more@example.com"}))["requestPasswordReset"] is True
    assert len(await rows(app, mail_outbox_table)) == 21  # refused requests queue nothing

    malformed = await gql(REQUEST_RESET, {"e": "not an address"})
    assert malformed.codes == ["BAD_USER_INPUT"] and list(malformed.error_fields()) == ["email"]


async def test_a_mailed_verification_link_verifies_the_email_once(
    gql: GQL, app: Any, alice: User, inbox: Inbox, worker: MailWorker
) -> None:
    assert (await gql(REQUEST_VERIFICATION)).codes == ["UNAUTHENTICATED"]
    assert (await gql.ok(REQUEST_VERIFICATION, token=alice.token))["requestEmailVerification"] is True
    message = await inbox.wait_for(alice.email)
    assert message["Subject"] == "Confirm your email address for Conduit"
    assert "24 hours" in parts(message)[0]
    token = token_in(message, "verify-email")
    assert not await email_verified(gql, alice)
    assert (await gql.ok(VERIFY, {"t": token}))["verifyEmail"] == {"username": "alice"}  # no sign-in needed
    assert await email_verified(gql, alice)
    spent = await gql(VERIFY, {"t": token})
    assert spent.codes == ["BAD_USER_INPUT"] and spent.error_fields() == {"token": ["is invalid or has expired"]}

    # a new address is unverified; new capitals are the same address
    await gql.ok(UPDATE_EMAIL, {"e": "ALICE@example.com"}, alice.token)
    assert await email_verified(gql, alice)
    await gql.ok(UPDATE_EMAIL, {"e": "alice@elsewhere.example"}, alice.token)
    assert not await email_verified(gql, alice)


async def test_a_verification_link_is_void_once_the_address_changed(
    gql: GQL, app: Any, alice: User, inbox: Inbox, worker: MailWorker
) -> None:
    await gql.ok(REQUEST_VERIFICATION, token=alice.token)
    token = token_in(await inbox.wait_for(alice.email), "verify-email")
    await gql.ok(UPDATE_EMAIL, {"e": "alice@elsewhere.example"}, alice.token)
    assert (await gql(VERIFY, {"t": token})).codes == ["BAD_USER_INPUT"]
    assert not await email_verified(gql, alice)

    # asked for before the change, rendered after it: not sent to either address
    mail: MailWorker = app.state.conduit.mail
    await mail.stop()
    await gql.ok(REQUEST_VERIFICATION, token=alice.token)
    await gql.ok(UPDATE_EMAIL, {"e": "alice@third.example"}, alice.token)
    assert (await mail.run_once()).dropped == 1


async def test_a_mail_server_that_is_down_delays_the_mail_and_loses_nothing(
    settings: Settings, app: Any, gql: GQL, alice: User
) -> None:
    port = free_port()  # nothing listens there yet
    down = create_app(settings.model_copy(update={"smtp_url": SecretStr(f"smtp://127.0.0.1:{port}")}))
    transport = httpx.ASGITransport(app=down, client=("127.0.0.1", 50000))
    mail: MailWorker = down.state.conduit.mail
    mail.start()
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            client = GQL(http)
            assert (await client.ok(REQUEST_RESET, {"e": alice.email}))["requestPasswordReset"] is True

            async def attempted() -> bool:
                (row,) = await rows(down, mail_outbox_table)
                return bool(row.last_error)

            await until(attempted, "a failed delivery")
            await mail.stop()  # from here on, rounds run when the test says
            (row,) = await rows(down, mail_outbox_table)
            assert (row.attempts, row.sent_at) == (1, None)
            assert "ConnectionRefused" in row.last_error or "connect" in row.last_error.lower()
            assert row.text_body and row.html_body  # rendered once, kept for the retry
            assert (await mail.run_once()).sent == 0  # not due before its backoff

            controller, inbox = smtp_server(port)
            try:
                done = await mail.run_once(utcnow() + dt.timedelta(seconds=31))
                assert (done.sent, done.failed) == (1, 0)
                token = token_in(await inbox.wait_for(alice.email), "reset-password")
            finally:
                controller.stop()
            (row,) = await rows(down, mail_outbox_table)
            assert row.attempts == 2 and row.sent_at is not None and row.text_body is None
            assert (await client.ok(RESET, {"t": token, "p": "brand-new-password"}))["resetPassword"]["token"]
    finally:
        await mail.stop()
        await down.state.conduit.broker.close()
        await down.state.conduit.db.dispose()


async def test_a_mail_is_given_up_after_its_attempts_with_its_last_error(
    settings: Settings, gql: GQL, alice: User
) -> None:
    closed = settings.model_copy(
        update={"smtp_url": SecretStr(f"smtp://127.0.0.1:{free_port()}"), "mail_max_attempts": 2}
    )
    down = create_app(closed)
    transport = httpx.ASGITransport(app=down, client=("127.0.0.1", 50000))
    mail: MailWorker = down.state.conduit.mail
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            await GQL(http).ok(REQUEST_RESET, {"e": alice.email})
        assert (await mail.run_once()).failed == 1
        assert (await mail.run_once(utcnow() + dt.timedelta(seconds=31))).failed == 1
        assert (await mail.run_once(utcnow() + dt.timedelta(minutes=10))).failed == 0  # given up
        (row,) = await rows(down, mail_outbox_table)
        assert (row.attempts, row.sent_at, row.text_body, row.html_body) == (2, None, None, None)
        assert row.last_error
    finally:
        await down.state.conduit.broker.close()
        await down.state.conduit.db.dispose()


async def test_two_workers_never_send_one_mail_twice(
    settings: Settings, app: Any, gql: GQL, alice: User, bob: User, inbox: Inbox
) -> None:
    other = create_app(settings)  # another process's worker on the same database
    try:
        for user in (alice, bob):
            for _ in range(3):
                await gql.ok(REQUEST_RESET, {"e": user.email})
        rounds = await asyncio.gather(app.state.conduit.mail.run_once(), other.state.conduit.mail.run_once())
        assert sum(done.sent for done in rounds) == 6
        assert sorted(message["To"] for message in inbox.messages) == [alice.email] * 3 + [bob.email] * 3
        assert len({message["Message-ID"] for message in inbox.messages}) == 6
    finally:
        await other.state.conduit.broker.close()
        await other.state.conduit.db.dispose()


async def test_in_development_mails_are_logged_kept_and_listed(
    settings: Settings,
    alice: User,
    gql: GQL,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.INFO, logger="conduit.mail")
    development = create_app(settings.model_copy(update={"smtp_url": None}))  # no SMTP configured
    transport = httpx.ASGITransport(app=development, client=("127.0.0.1", 50000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            await GQL(http).ok(REQUEST_RESET, {"e": alice.email})
        assert (await development.state.conduit.mail.run_once()).sent == 1
    finally:
        await development.state.conduit.broker.close()
        await development.state.conduit.db.dispose()
    logged = [record.getMessage() for record in caplog.records if record.name == "conduit.mail"]
    assert len(logged) == 1 and f"mail to {alice.email}" in logged[0]
    found = LINK.search(logged[0])
    assert found is not None
    link = found.group(0)

    monkeypatch.setenv("CONDUIT_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CONDUIT_JWT_SECRET_FILE", str(tmp_path / "secret"))
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["mail", "list"]) == 0  # the command runs its own event loop
    listed = capsys.readouterr().out
    assert f"password_reset to {alice.email}" in listed and "Reset your Conduit password" in listed
    assert link in listed and "sent:    20" in listed
    # ... and the listed link is one that works
    assert (await gql.ok(RESET, {"t": found.group(2), "p": "brand-new-password"}))["resetPassword"]["token"]


def test_production_serves_only_with_a_mail_server(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CONDUIT_ENV", "production")
    monkeypatch.setenv("CONDUIT_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    monkeypatch.setenv("CONDUIT_JWT_SECRET", "p" * 40)
    monkeypatch.setenv("CONDUIT_JWT_SECRET_FILE", str(tmp_path / "secret"))
    assert main(["serve", "--port", "1"]) == 2
    error = capsys.readouterr().err
    assert "CONDUIT_SMTP_URL, CONDUIT_MAIL_FROM, CONDUIT_PUBLIC_URL required" in error
    monkeypatch.setenv("CONDUIT_SMTP_URL", "http://mail.example")
    monkeypatch.setenv("CONDUIT_MAIL_FROM", "Conduit <no-reply@conduit.example>")
    monkeypatch.setenv("CONDUIT_PUBLIC_URL", PUBLIC_URL)
    assert main(["serve", "--port", "1"]) == 2
    assert "must start with smtp:// or smtps://" in capsys.readouterr().err


def test_smtp_urls_and_when_starttls_is_required() -> None:
    submission = SmtpServer.from_url("smtp://user%40corp:p%3Ass@mail.example:587", timeout=3)
    assert (submission.hostname, submission.port, submission.username, submission.password) == (
        "mail.example",
        587,
        "user@corp",
        "p:ss",
    )
    assert "p:ss" not in repr(submission)
    assert submission._start_tls() is True  # credentials never in clear: STARTTLS or nothing
    assert SmtpServer.from_url("smtp://mail.example", timeout=3)._start_tls() is None  # when offered
    assert SmtpServer.from_url("smtp://user:pw@127.0.0.1:2525", timeout=3)._start_tls() is None
    implicit = SmtpServer.from_url("smtps://mail.example", timeout=3)
    assert (implicit.port, implicit.implicit_tls, implicit._start_tls()) == (465, True, False)
    for bad in ("http://mail.example", "smtp://", "smtp://mail.example:99999"):
        with pytest.raises(ValueError, match="CONDUIT_SMTP_URL"):
            SmtpServer.from_url(bad, timeout=3)


def test_html_bodies_escape_what_users_wrote() -> None:
    rendered = render(
        "email_verification",
        username="<script>x</script>",
        email="a&b@example.com",
        link=link(PUBLIC_URL, "email_verification", "t0ken"),
        valid_for=in_words(dt.timedelta(hours=1)),
    )
    assert "&lt;script&gt;" in rendered.html and "<script>" not in rendered.html
    assert "a&amp;b@example.com" in rendered.html
    assert "<script>x</script>" in rendered.text and "within 1 hour:" in rendered.text
    assert f"{PUBLIC_URL}/verify-email?token=t0ken" in rendered.text
