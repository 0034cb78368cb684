"""Account mails: rendered from templates, sent from the ``mail_outbox`` table after the request's commit.

A mutation that mails (``requestPasswordReset``, ``requestEmailVerification``) only inserts an
unrendered request into ``mail_outbox`` inside its own transaction and wakes the worker; it never
waits for SMTP. The ``MailWorker`` (an asyncio task the app starts and stops) then, per row:

1. claims it (``db.accounts.claim_mail``: one conditional UPDATE, so two processes never send
   one mail; a claim is a lease of ``lease`` seconds, after which a crashed holder's row is due
   again);
2. renders it, once, in one transaction: finds the account (none: the row is deleted unsent, so
   a reset request answers the same for every address), stores the hash of a new single-use
   token (``account_token``) and the subject, plain-text and HTML bodies with the link;
3. delivers it outside any transaction: over SMTP (``aiosmtplib``; STARTTLS whenever the server
   offers it, implicit TLS for ``smtps://``), or, with no SMTP configured (development, tests),
   by logging it on ``conduit.mail``;
4. records the outcome: sent (SMTP: the bodies are cleared, since they hold a live token and only
   its hash is meant to be at rest; the log delivery keeps them for ``conduit mail list``), or
   failed (``last_error``, due again after an exponential backoff of 30 s doubling up to one
   hour; after ``max_attempts`` attempts the row stays unsent with its last error).

Delivery is at least once: a worker stopped between the SMTP server's acceptance and the
UPDATE that records it sends that mail again after the lease. A request older than its token's
lifetime is not sent any more (``last_error`` "expired before delivery"): its link would be dead.

Templates are ``auth/templates/<kind>.txt`` and ``<kind>.html`` (Jinja2; HTML autoescaped).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

import aiosmtplib
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from auth.audit import email_hash
from auth.tokens import hash_account_token, new_account_token
from db import accounts
from db.engine import Database
from db.models import utcnow

logger = logging.getLogger("conduit.mail")

SUBJECTS = {
    accounts.PASSWORD_RESET: "Reset your Conduit password",
    accounts.EMAIL_VERIFICATION: "Confirm your email address for Conduit",
}
ROUTES = {accounts.PASSWORD_RESET: "reset-password", accounts.EMAIL_VERIFICATION: "verify-email"}
"""The frontend's route per kind: ``{public_url}/<route>?token=...`` takes the token and calls the mutation."""

BACKOFF_BASE = dt.timedelta(seconds=30)
BACKOFF_CAP = dt.timedelta(hours=1)
BATCH = 50
"""Rows read per query of due mails; a round reads at most ``MAX_BATCHES`` batches."""
MAX_BATCHES = 20

BLUR_MIN_SECONDS = 0.2
BLUR_MAX_SECONDS = 1.0
"""How long ``MailWorker.wake(blur=True)`` waits, drawn uniformly for each wake."""

LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})

Deliver = Callable[[EmailMessage], Awaitable[None]]
"""Sends one message or raises; ``SmtpServer.send`` is the real one."""


@dataclass(frozen=True)
class SmtpServer:
    """Where and how mail is submitted, from ``CONDUIT_SMTP_URL``.

    ``smtp://[user[:password]@]host[:port]`` (port 25 unless given; 587 is the usual submission
    port) upgrades with STARTTLS whenever the server offers it, and requires it when there are
    credentials (except on this machine); ``smtps://`` (port 465 unless
    given) speaks TLS from the first byte. User and password are percent-decoded. ``timeout`` is
    in seconds, for connecting and for every command.
    """

    hostname: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    implicit_tls: bool = False
    timeout: float = 10.0

    @classmethod
    def from_url(cls, url: str, timeout: float) -> SmtpServer:
        """Parse ``url`` (see the class docstring); ``ValueError`` naming the problem, never the password."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError("CONDUIT_SMTP_URL must start with smtp:// or smtps://")
        if not parts.hostname:
            raise ValueError("CONDUIT_SMTP_URL names no host")
        try:
            port = parts.port
        except ValueError:
            raise ValueError("CONDUIT_SMTP_URL has an invalid port") from None
        implicit = parts.scheme == "smtps"
        return cls(
            hostname=parts.hostname,
            port=port or (465 if implicit else 25),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            implicit_tls=implicit,
            timeout=timeout,
        )

    async def send(self, message: EmailMessage) -> None:
        """Submit ``message``; raises ``aiosmtplib.SMTPException`` or ``OSError`` when it was not accepted."""
        await aiosmtplib.send(
            message,
            hostname=self.hostname,
            port=self.port,
            username=self.username,
            password=self.password,
            use_tls=self.implicit_tls,
            start_tls=self._start_tls(),
            timeout=self.timeout,
        )

    def _start_tls(self) -> bool | None:
        """aiosmtplib's ``start_tls``: ``None`` upgrades when the server offers it, ``True`` insists.

        Credentials never cross the network in clear: with a user name, a server that does not
        offer STARTTLS is refused (an attacker on the path can strip the offer), unless it is
        this machine.
        """
        if self.implicit_tls:
            return False  # TLS from the first byte already
        if self.username is not None and self.hostname not in LOOPBACK:
            return True
        return None


@dataclass(frozen=True)
class MailConfig:
    """What the worker needs from the settings.

    ``sender`` is the ``From`` header; ``public_url`` the frontend's base URL the links start
    with; ``smtp`` ``None`` to log mails instead of sending them (development); the token
    lifetimes per kind; ``max_attempts`` deliveries before a mail is given up; ``poll_seconds``
    between looks at the table when nothing wakes the worker (retries, rows of other processes).
    """

    sender: str
    public_url: str
    smtp: SmtpServer | None
    reset_ttl: dt.timedelta
    verification_ttl: dt.timedelta
    max_attempts: int = 8
    poll_seconds: float = 5.0

    def ttl(self, kind: str) -> dt.timedelta:
        """How long the token of a ``kind`` mail stays valid."""
        return self.reset_ttl if kind == accounts.PASSWORD_RESET else self.verification_ttl

    @property
    def lease(self) -> dt.timedelta:
        """How long a claim holds a row: longer than an SMTP conversation may last."""
        timeout = self.smtp.timeout if self.smtp is not None else 0.0
        return dt.timedelta(seconds=30 + 3 * timeout)


@dataclass(frozen=True)
class Rendered:
    """A mail's subject and bodies."""

    subject: str
    text: str
    html: str


@functools.cache
def _templates() -> Environment:
    """The template environment, built on first use (nothing at import time)."""
    return Environment(
        loader=PackageLoader("auth", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
        undefined=StrictUndefined,  # a misspelt variable fails the render instead of mailing a blank
        keep_trailing_newline=True,
    )


def render(kind: str, *, username: str, email: str, link: str, valid_for: str) -> Rendered:
    """The ``kind`` mail (``db.accounts.PURPOSES``) for ``username`` at ``email`` with ``link``.

    ``valid_for`` is the token's lifetime in words ("30 minutes"). User-supplied values are
    escaped in the HTML body by Jinja2's autoescape.
    """
    subject = SUBJECTS[kind]
    values = {"subject": subject, "username": username, "email": email, "link": link, "valid_for": valid_for}
    text = _templates().get_template(f"{kind}.txt").render(values)
    html = _templates().get_template(f"{kind}.html").render(values)
    return Rendered(subject=subject, text=text, html=html)


def link(public_url: str, kind: str, token: str) -> str:
    """The frontend link that carries ``token``: ``{public_url}/reset-password?token=...`` or ``/verify-email``."""
    return f"{public_url.rstrip('/')}/{ROUTES[kind]}?{urlencode({'token': token})}"


def in_words(ttl: dt.timedelta) -> str:
    """``ttl`` as people say it: "30 minutes", "24 hours", "1 hour"."""
    minutes = int(ttl.total_seconds() // 60)
    if minutes % 60 == 0 and minutes >= 60:
        hours = minutes // 60
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def build_message(*, sender: str, recipient: str, subject: str, text: str, html: str) -> EmailMessage:
    """A ``multipart/alternative`` message: the plain-text part first, then the HTML part (RFC 2046 5.1.4)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = subject
    message["Date"] = formatdate(usegmt=True)
    # the sender's domain: make_msgid's default asks DNS for this host's name, which may hang
    domain = parseaddr(sender)[1].rpartition("@")[2] or "conduit.invalid"
    message["Message-ID"] = make_msgid(domain=domain)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to a robot
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


@dataclass
class Round:
    """What one ``MailWorker.run_once`` did: mails ``sent``, ``dropped`` (no such account), ``failed``."""

    sent: int = 0
    dropped: int = 0
    failed: int = 0


class MailWorker:
    """Sends the outbox's mails from an asyncio task (module docstring).

    ``start`` and ``stop`` follow the app's lifespan; ``wake`` after a commit that queued mail;
    ``run_once`` does one round now (tests drive the worker with it, passing ``now`` to step
    past a backoff without sleeping). ``deliver`` replaces the delivery (default: SMTP when
    configured, else the log).
    """

    def __init__(self, db: Database, config: MailConfig, deliver: Deliver | None = None) -> None:
        self.db = db
        self.config = config
        self._deliver: Deliver = deliver or (config.smtp.send if config.smtp is not None else self._log)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def keeps_bodies(self) -> bool:
        """Whether sent mails keep their bodies: only when they are logged, never after SMTP."""
        return self.config.smtp is None

    def wake(self, *, blur: bool = False) -> None:
        """Look at the outbox (after a commit that queued mail); safe to call when not started.

        Now, or with ``blur`` after a random 0.2-1.0 s: the round then renders the mail while
        some later request runs, not while this one is still answering. Rendering a known
        address's reset mail is more work than dropping an unknown one, and on the same event
        loop (and SQLite's write lock) that work would lengthen the very answer that must not
        tell them apart.
        """
        if not blur:
            self._wake.set()
            return
        delay = BLUR_MIN_SECONDS + secrets.randbelow(1000) / 1000 * (BLUR_MAX_SECONDS - BLUR_MIN_SECONDS)
        asyncio.get_running_loop().call_later(delay, self._wake.set)

    def start(self) -> None:
        """Start the task (once; in the app's lifespan)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="conduit-mail")

    async def stop(self) -> None:
        """Stop the task; a mail it was sending is sent again once its lease runs out (at least once)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            self._wake.clear()  # before the round: a wake during it means another round
            try:
                await self.run_once()
            except Exception as error:  # the database is away: try again at the next poll
                logger.warning("mail worker: round failed, retrying in %s s: %s", self.config.poll_seconds, error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.config.poll_seconds)

    async def run_once(self, now: dt.datetime | None = None) -> Round:
        """Send every mail due at ``now`` (default: the current time); what was done.

        Raises only when the due mails cannot be read; what goes wrong with one mail is recorded
        on its row (or, when even that fails, logged, and the row is due again after its lease).
        """
        done = Round()
        for _ in range(MAX_BATCHES):
            session = self.db.session()
            try:
                ids = await accounts.due_mail_ids(
                    session, now=now or utcnow(), max_attempts=self.config.max_attempts, limit=BATCH
                )
            finally:
                await session.close()
            for mail_id in ids:
                try:
                    await self._process(mail_id, now or utcnow(), done)
                except Exception:  # the database failed under this mail: the next ones may fare better
                    logger.exception("mail %s: attempt not recorded; due again after its lease", mail_id)
                    done.failed += 1
            if len(ids) < BATCH:
                break
        return done

    async def _process(self, mail_id: int, now: dt.datetime, done: Round) -> None:
        config = self.config
        session = self.db.session()
        try:
            # The claim commits on its own: an attempt that fails later (rendering, SMTP) has
            # been counted and leased, so a mail that always fails cannot hold the worker.
            async with self.db.transaction(session):
                if not await accounts.claim_mail(session, mail_id=mail_id, now=now, lease=config.lease):
                    return  # another process has it, or it was sent meanwhile
                row = await accounts.mail_by_id(session, mail_id)
                if now >= _aware(row.created_at) + config.ttl(row.kind):
                    await accounts.give_up_mail(
                        session, mail_id=mail_id, error="expired before delivery", attempts=config.max_attempts
                    )
                    done.failed += 1
                    return
            try:
                if row.subject is None:
                    async with self.db.transaction(session):
                        row = await self._render(session, row, now)
                    if row is None:
                        done.dropped += 1
                        return
                message = build_message(
                    sender=config.sender,
                    recipient=row.recipient,
                    subject=row.subject,
                    text=row.text_body,
                    html=row.html_body,
                )
                await self._deliver(message)
            except Exception as error:  # SMTP refused, timed out or unreachable; a broken template
                await self._failed(session, row, now, error)
                done.failed += 1
                return
            async with self.db.transaction(session):
                await accounts.mark_mail_sent(session, mail_id=mail_id, now=utcnow(), keep_bodies=self.keeps_bodies)
            done.sent += 1
            if config.smtp is not None:
                logger.info("mail %s (%s) sent to %s", mail_id, row.kind, email_hash(row.recipient))
        finally:
            await session.close()

    async def _render(self, session: Any, row: Any, now: dt.datetime) -> Any:
        """Create the token and fill in the mail (inside the claim's transaction); ``None`` when dropped."""
        user = await accounts.user_for_mail(session, user_id=row.user_id, email=row.recipient)
        if user is None or (row.user_id is not None and user.email.lower() != row.recipient.lower()):
            # no account has the address (a reset asked for anyone's address), or the viewer
            # changed address since asking for a verification: nobody to mail
            await accounts.delete_mail(session, row.id)
            return None
        token = new_account_token()
        ttl = self.config.ttl(row.kind)
        await accounts.create_account_token(
            session,
            user_id=user.id,
            purpose=row.kind,
            email=user.email,
            token_hash=hash_account_token(token),
            now=now,
            ttl=ttl,
        )
        rendered = render(
            row.kind,
            username=user.username,
            email=user.email,
            link=link(self.config.public_url, row.kind, token),
            valid_for=in_words(ttl),
        )
        # To the address the account has, not the one typed: addresses that only compare equal
        # (case, Unicode folding) must not receive another account's link.
        await accounts.fill_mail(
            session,
            mail_id=row.id,
            user_id=user.id,
            recipient=user.email,
            subject=rendered.subject,
            text_body=rendered.text,
            html_body=rendered.html,
        )
        return await accounts.mail_by_id(session, row.id)

    async def _failed(self, session: Any, row: Any, now: dt.datetime, error: BaseException) -> None:
        attempts = row.attempts  # counted by the claim
        reason = f"{type(error).__name__}: {error}".strip()
        async with self.db.transaction(session):
            if attempts >= self.config.max_attempts:
                await accounts.give_up_mail(session, mail_id=row.id, error=reason, attempts=attempts)
                logger.error("mail %s (%s) given up after %s attempts: %s", row.id, row.kind, attempts, reason)
                return
            delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempts - 1))
            await accounts.mark_mail_failed(session, mail_id=row.id, error=reason, next_attempt_at=now + delay)
        logger.warning(
            "mail %s (%s) not sent (attempt %s), retrying in %s s: %s",
            row.id,
            row.kind,
            attempts,
            int(delay.total_seconds()),
            reason,
        )

    async def _log(self, message: EmailMessage) -> None:
        """Development's delivery: the whole mail (its link included) on ``conduit.mail``."""
        body = message.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else ""
        logger.info("mail to %s: %s\n%s", message["To"], message["Subject"], text)


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
