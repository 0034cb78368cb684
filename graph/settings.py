"""Settings from the environment (prefix ``CONDUIT_``), read once by ``create_app``."""

from __future__ import annotations

import datetime as dt
import os
import secrets
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from auth.mail import MailConfig, SmtpServer
from auth.passwords import DEFAULT_PROFILE, ProfileName
from auth.tokens import SANE_KID

MIN_SECRET_LENGTH = 32
MIB = 1024 * 1024
DEV_MAIL_FROM = "Conduit <no-reply@localhost>"
DEV_PUBLIC_URL = "http://localhost:3000"


class Settings(BaseSettings):
    """Every setting of the server; each field is the environment variable ``CONDUIT_<NAME>``.

    Signing keys for access tokens (HS256 needs keys of at least 256 bits, RFC 7518 3.2, so every
    key must be at least 32 characters, else the server refuses to start):

    - ``CONDUIT_JWT_SECRET``: the single key. Production requires it (unless key rotation is on);
      development generates one into ``CONDUIT_JWT_SECRET_FILE``.
    - Key rotation, optional: ``CONDUIT_JWT_KEYS``, a JSON object of key id to key, e.g.
      ``{"2026-11": "<new key>", "2026-10": "<old key>"}``, and ``CONDUIT_JWT_ACTIVE_KID``, the id
      of the key that signs. Tokens then carry the id in their ``kid`` header and are verified
      with the key it names; a token of a removed id, or without one, is refused (HTTP 401). Key
      ids are 1-64 characters of letters, digits, ``.``, ``_`` and ``-``. Set either
      ``CONDUIT_JWT_SECRET`` or ``CONDUIT_JWT_KEYS``, not both. To rotate: add the new key, then
      (on every server) make it active, then remove the old key once the last token it signed
      has expired (``CONDUIT_ACCESS_TOKEN_TTL_SECONDS`` later). Refresh tokens are not JWTs and
      survive every rotation; turning rotation on refuses the access tokens signed before (their
      clients refresh).
    """

    model_config = SettingsConfigDict(env_prefix="CONDUIT_", extra="ignore")

    env: Literal["development", "production", "test"] = "development"
    database_url: str = "sqlite:///./conduit.db"
    # connections per process; unset: 2 + 0 on SQLite, 5 + 5 on PostgreSQL (db/engine.py)
    db_pool_size: int | None = Field(default=None, ge=1, le=200)
    db_max_overflow: int | None = Field(default=None, ge=0, le=200)
    # A request waits at most this long for a pooled connection before failing.
    db_pool_timeout_seconds: float = Field(default=5.0, gt=0)
    db_connect_timeout_seconds: float = Field(default=2.0, gt=0)
    # PostgreSQL's statement_timeout for every statement the server sends.
    db_statement_timeout_ms: int = Field(default=10_000, ge=0)
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0)
    jwt_secret: SecretStr | None = None
    jwt_secret_file: Path = Path(".conduit-secret")
    jwt_keys: dict[str, SecretStr] | None = None
    jwt_active_kid: str | None = None
    access_token_ttl_seconds: int = Field(default=900, ge=1)
    refresh_token_ttl_days: int = Field(default=30, ge=1)
    cors_origins: Annotated[list[str], NoDecode] = []
    introspection: bool | None = None
    playground: bool | None = None
    max_depth: int = Field(default=12, ge=1)
    max_aliases: int = Field(default=30, ge=0)
    max_tokens: int = Field(default=5000, ge=1)
    max_cost: int = Field(default=50_000, ge=1)
    max_directives: int = Field(default=50, ge=0)
    max_directives_per_field: int = Field(default=5, ge=0)
    # The cost budget (graph/admission/budget.py): points per viewer (or client address) per fixed window;
    # 0 turns it off.
    rate_limit_points: int = Field(default=5000, ge=0)
    rate_limit_window_seconds: int = Field(default=3600, ge=1, le=31 * 24 * 3600)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Redis (db/redis.py), e.g. redis://127.0.0.1:6379/0: the cost budget and the login,
    # registration and refresh limits live there instead of the database. A secret: the URL may
    # carry a password. Unset: both stay in the database.
    cache_url: SecretStr | None = None
    # how long connecting to Redis or one command may take before the request goes on without it;
    # the time counts the event loop's own delays, so too tight a bound fails open under load
    cache_timeout_seconds: float = Field(default=1.0, gt=0, le=10)
    # The shared response cache (graph/responses/): answers of cacheable queries kept for their
    # maxAge, purged by the mutations that change them; in Redis when cache_url is set, else in
    # process, bounded by entries and bytes (keys and bodies).
    response_cache: bool = True
    response_cache_max_entries: int = Field(default=10_000, ge=0)
    response_cache_max_bytes: int = Field(default=64 * MIB, ge=0)
    # gzip for responses of 1 KiB or more when the client accepts it (graph/transport/compression.py);
    # off when a proxy in front compresses (it must then honour Cache-Control: no-transform, BREACH)
    compression: bool = True
    # /metrics on its own listener on this host and port (graph/observability/listener.py) instead of
    # the public port, which then answers 404 on /metrics; unset: /metrics on the public port
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_host: str = "127.0.0.1"
    # Answer operations from planned SQL (graph/execution/planned/); off only to compare or debug:
    # graphql-core and the resolvers then answer everything.
    planned_execution: bool = True
    # GET /__stats (SQL statements and requests so far) for the benchmark harness in bench/; never in production
    bench_stats: bool = False
    # Automatic persisted queries (graph/transport/persisted.py): documents remembered per process; 0 turns APQ off.
    apq_cache_size: int = Field(default=1000, ge=0)
    # Bytes each cache (graph/caches.py) may hold per process, keys and values as measured on
    # put; an entry larger than its cache's budget is not kept, 0 turns the cache off.
    cache_documents_max_bytes: int = Field(default=32 * MIB, ge=0)
    cache_plans_max_bytes: int = Field(default=32 * MIB, ge=0)
    cache_costs_max_bytes: int = Field(default=8 * MIB, ge=0)
    cache_variables_max_bytes: int = Field(default=8 * MIB, ge=0)
    cache_apq_max_bytes: int = Field(default=16 * MIB, ge=0)
    cache_tokens_max_bytes: int = Field(default=8 * MIB, ge=0)
    # Trusted documents: a JSON object of id (sha256 hex) to document text, as GraphQL Code
    # Generator's client preset writes it; with persisted_documents_only, nothing else runs.
    persisted_documents: Path | None = None
    persisted_documents_only: bool = False

    # Log lines (graph/observability/logs.py json_logs): "auto" is text when stderr is a terminal
    # outside production, JSON otherwise; "json" and "text" force either. `serve --log-format` wins.
    log_format: Literal["auto", "json", "text"] = "auto"

    # argon2id parameters (auth/passwords.py PROFILES); "cheapest" only for test suites
    password_hash_profile: ProfileName = DEFAULT_PROFILE

    # Account mails (auth/mail.py). No SMTP URL: mails are logged and kept in mail_outbox
    # (`conduit mail list`); `conduit serve` in production refuses to start without one.
    smtp_url: SecretStr | None = None
    smtp_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    mail_from: str = DEV_MAIL_FROM
    # the frontend's address; links are {public_url}/reset-password?token=... and /verify-email?token=...
    public_url: str = DEV_PUBLIC_URL
    password_reset_ttl_minutes: int = Field(default=30, ge=1, le=24 * 60)
    email_verification_ttl_hours: int = Field(default=24, ge=1, le=30 * 24)
    mail_max_attempts: int = Field(default=8, ge=1, le=100)
    mail_poll_seconds: float = Field(default=5.0, gt=0, le=3600)

    @field_validator("password_hash_profile")
    @classmethod
    def _hashing_for_real_use(cls, value: str, info: ValidationInfo) -> str:
        if value == "cheapest" and info.data.get("env") != "test":
            raise ValueError("the 'cheapest' password hash profile is for CONDUIT_ENV=test only")
        return value

    @field_validator("public_url")
    @classmethod
    def _absolute_http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(
                "CONDUIT_PUBLIC_URL must be an absolute http(s) URL without query, e.g. https://conduit.example"
            )
        return value.rstrip("/")

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @property
    def is_production(self) -> bool:
        """Whether production defaults apply (no introspection or playground unless enabled)."""
        return self.env == "production"

    @property
    def introspection_enabled(self) -> bool:
        """Introspection: on unless turned off, and off in production unless turned on."""
        return self.introspection if self.introspection is not None else not self.is_production

    @property
    def playground_enabled(self) -> bool:
        """The GraphiQL page: on unless turned off, and off in production unless turned on."""
        return self.playground if self.playground is not None else not self.is_production

    @property
    def field_suggestions_hidden(self) -> bool:
        """No "Did you mean ...?" in errors: in production, and wherever introspection is off (contract README)."""
        return self.is_production or not self.introspection_enabled

    def resolve_jwt_keys(self) -> dict[str, str]:
        """The verification keys by key id when key rotation is on, else ``{}`` (class docstring).

        Raises ``ValueError`` when a key is shorter than 32 characters, a key id is malformed,
        ``CONDUIT_JWT_ACTIVE_KID`` is missing or names no key, or ``CONDUIT_JWT_SECRET`` is set too.
        The messages name key ids, never keys.
        """
        if not self.jwt_keys:
            if self.jwt_active_kid is not None:
                raise ValueError("CONDUIT_JWT_ACTIVE_KID needs CONDUIT_JWT_KEYS")
            return {}
        if self.jwt_secret is not None:
            raise ValueError("set CONDUIT_JWT_SECRET or CONDUIT_JWT_KEYS, not both")
        keys = {kid: key.get_secret_value() for kid, key in self.jwt_keys.items()}
        for kid, key in keys.items():
            if not SANE_KID.fullmatch(kid):
                raise ValueError(f"CONDUIT_JWT_KEYS: key id {kid[:64]!r} must be 1-64 characters of [A-Za-z0-9._-]")
            if len(key) < MIN_SECRET_LENGTH:
                raise ValueError(f"CONDUIT_JWT_KEYS: key {kid!r} must be at least {MIN_SECRET_LENGTH} characters")
        if self.jwt_active_kid is None:
            raise ValueError("CONDUIT_JWT_ACTIVE_KID is required with CONDUIT_JWT_KEYS")
        if self.jwt_active_kid not in keys:
            raise ValueError(f"CONDUIT_JWT_ACTIVE_KID {self.jwt_active_kid[:64]!r} names no key of CONDUIT_JWT_KEYS")
        return keys

    def resolve_jwt_secret(self) -> str:
        """The JWT signing key.

        With key rotation (``CONDUIT_JWT_KEYS``) it is the key ``CONDUIT_JWT_ACTIVE_KID`` names,
        checked by ``resolve_jwt_keys``. Otherwise, in production it must come from
        ``CONDUIT_JWT_SECRET`` and be at least 32 characters (raises ``ValueError`` otherwise).
        In development a random key is generated once and kept in ``jwt_secret_file`` (mode
        0600), so tokens survive restarts.
        """
        keys = self.resolve_jwt_keys()
        if keys and self.jwt_active_kid is not None:
            return keys[self.jwt_active_kid]
        if self.jwt_secret is not None:
            secret = self.jwt_secret.get_secret_value()
            if len(secret) < MIN_SECRET_LENGTH:
                raise ValueError(f"CONDUIT_JWT_SECRET must be at least {MIN_SECRET_LENGTH} characters")
            return secret
        if self.is_production:
            raise ValueError("CONDUIT_JWT_SECRET is required when CONDUIT_ENV=production")
        path = self.jwt_secret_file
        if path.exists():
            secret = path.read_text().strip()
            if len(secret) >= MIN_SECRET_LENGTH:
                return secret
        secret = secrets.token_urlsafe(48)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secret + "\n")
        return secret

    def resolve_smtp(self) -> SmtpServer | None:
        """The SMTP server mail goes to, ``None`` when mails are only logged (no ``CONDUIT_SMTP_URL``).

        Raises ``ValueError`` for a malformed URL, and in production when ``CONDUIT_SMTP_URL``,
        ``CONDUIT_MAIL_FROM`` or ``CONDUIT_PUBLIC_URL`` is missing (``conduit serve`` refuses to
        start: a server that answers ``requestPasswordReset`` with ``true`` must deliver the mail,
        and a production log must not carry live reset links).
        """
        if self.is_production:
            missing = [
                name
                for name, unset in (
                    ("CONDUIT_SMTP_URL", self.smtp_url is None),
                    ("CONDUIT_MAIL_FROM", "mail_from" not in self.model_fields_set),
                    ("CONDUIT_PUBLIC_URL", "public_url" not in self.model_fields_set),
                )
                if unset
            ]
            if missing:
                raise ValueError(f"{', '.join(missing)} required when CONDUIT_ENV=production (account mails)")
        if self.smtp_url is None:
            return None
        return SmtpServer.from_url(self.smtp_url.get_secret_value(), self.smtp_timeout_seconds)

    def mail_config(self) -> MailConfig:
        """What the mail worker needs (``auth/mail.py``).

        Raises ``ValueError`` as ``resolve_smtp`` does, except for production without any SMTP
        URL: ``create_app`` then builds an app that keeps its mails unsent (``conduit serve``
        refuses that case before building it).
        """
        try:
            smtp = self.resolve_smtp()
        except ValueError:
            if self.smtp_url is not None or not self.is_production:
                raise
            smtp = None
        return MailConfig(
            sender=self.mail_from,
            public_url=self.public_url,
            smtp=smtp,
            reset_ttl=dt.timedelta(minutes=self.password_reset_ttl_minutes),
            verification_ttl=dt.timedelta(hours=self.email_verification_ttl_hours),
            max_attempts=self.mail_max_attempts,
            poll_seconds=self.mail_poll_seconds,
        )
