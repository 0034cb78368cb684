"""Settings from the environment (prefix ``CONDUIT_``), read once by ``create_app``."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MIN_SECRET_LENGTH = 32


class Settings(BaseSettings):
    """Every setting of the server; each field is the environment variable ``CONDUIT_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="CONDUIT_", extra="ignore")

    env: Literal["development", "production", "test"] = "development"
    database_url: str = "sqlite:///./conduit.db"
    db_pool_size: int = Field(default=5, ge=1, le=200)
    db_max_overflow: int = Field(default=5, ge=0, le=200)
    # A request waits at most this long for a pooled connection before failing.
    db_pool_timeout_seconds: float = Field(default=5.0, gt=0)
    db_connect_timeout_seconds: float = Field(default=2.0, gt=0)
    # PostgreSQL's statement_timeout for every statement the server sends.
    db_statement_timeout_ms: int = Field(default=10_000, ge=0)
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0)
    jwt_secret: SecretStr | None = None
    jwt_secret_file: Path = Path(".conduit-secret")
    access_token_ttl_seconds: int = Field(default=900, ge=1)
    refresh_token_ttl_days: int = Field(default=30, ge=1)
    cors_origins: Annotated[list[str], NoDecode] = []
    introspection: bool | None = None
    playground: bool | None = None
    max_depth: int = Field(default=12, ge=1)
    max_aliases: int = Field(default=30, ge=0)
    max_tokens: int = Field(default=5000, ge=1)
    max_cost: int = Field(default=50_000, ge=1)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)

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

    def resolve_jwt_secret(self) -> str:
        """The JWT signing key.

        In production it must come from ``CONDUIT_JWT_SECRET`` and be at least 32 characters
        (raises ``ValueError`` otherwise). In development a random key is generated once and
        kept in ``jwt_secret_file`` (mode 0600), so tokens survive restarts.
        """
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
