"""The security audit log: one structured record per security event, on the ``conduit.audit`` logger.

Every record's message is the event name followed by its fields as ``key=value`` pairs (readable in
text logs); the same fields travel as ``extra`` attributes, so the JSON formatter of
``graph.observability`` puts them at the top level of the line. Every record carries ``event``,
``request_id`` (the HTTP request being handled, ``None`` outside one, e.g. the command line) and
``viewer_id`` (the signed-in user id, ``None`` when anonymous or unknown).

Events (level) and their own fields; ``retry_after`` is in seconds:

- ``login_failed`` (INFO): ``email_hash``, ``client`` (the client address).
- ``login_locked`` (WARNING): ``limit`` (``email`` or ``address``), ``retry_after``, ``email_hash``, ``client``.
- ``register_limited``, ``refresh_limited`` (WARNING): ``limit`` (``address``), ``retry_after``, ``client``.
- ``refresh_token_reuse_detected`` (WARNING): ``user_id``, ``family_id``, ``client``.
- ``password_changed`` (INFO): ``user_id``, ``sessions_revoked`` (refresh tokens revoked); ``source=cli`` when
  an operator set it (``conduit user set-password``).
- ``password_reset_requested`` (INFO): ``email_hash``, ``client``; logged for every request, whether
  or not an account has the address (the log must not tell either).
- ``password_reset_limited`` (WARNING): ``limit`` (``email`` or ``address``), ``retry_after``,
  ``email_hash``, ``client``.
- ``password_reset_done`` (INFO): ``user_id``, ``sessions_revoked`` (refresh tokens revoked).
- ``email_verification_requested`` (INFO): ``user_id``.
- ``email_verification_limited`` (WARNING): ``limit`` (``user``), ``retry_after``.
- ``email_verified`` (INFO): ``user_id``.
- ``role_changed`` (WARNING): ``source`` (``api`` or ``cli``), ``target_user_id``, ``old_role``, ``new_role``.
- ``token_rejected`` (INFO): ``reason`` (``bad_header``, ``deleted_user``, ``suspended`` or an
  ``auth.tokens.InvalidToken`` reason), ``kid`` (an unknown key id, when sane) or ``user_id`` (for
  ``deleted_user`` and ``suspended``).
- ``sign_in_refused`` (INFO): ``reason`` (``suspended``), ``via`` (``login`` or ``refresh``), ``user_id``,
  ``client``; a login is refused so only after its password was right.
- ``permission_denied`` (INFO): ``permission`` (the class name), ``field_path`` (e.g. ``deleteArticle``).
- ``user_suspended`` (WARNING): ``source`` (``api`` or ``cli``), ``target_user_id``, ``until`` (ISO 8601, ``None``
  for ever), ``sessions_revoked`` (refresh tokens revoked).
- ``user_unsuspended`` (WARNING): ``source``, ``target_user_id``, ``was_suspended`` (whether a suspension was current).
- ``user_deleted`` (WARNING): ``source``, ``target_user_id``, ``by`` (``self``, ``admin`` or ``operator`` from the
  command line), and the counts of what went with the account: ``articles``, ``comments``, ``comments_on_articles``,
  ``favorites``, ``favorites_of_articles``, ``follows``, ``sessions`` (refresh tokens).
- ``content_removed`` (WARNING): a moderator or admin deleted someone else's content: ``kind`` (``article`` or
  ``comment``), ``content_id``, ``author_id``.

What never reaches this log: passwords, access or refresh tokens, keys, and email addresses
(``email_hash`` is a short SHA-256 prefix of the lower-cased address, enough to correlate attempts
on one account). ``audit`` drops any field whose name mentions a password, token, secret or key
material, and lists the dropped names in ``dropped_fields`` so the mistake shows up in tests.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

logger = logging.getLogger("conduit.audit")

WARNING_EVENTS = frozenset(
    {
        "login_locked",
        "register_limited",
        "refresh_limited",
        "refresh_token_reuse_detected",
        "role_changed",
        "user_suspended",
        "user_unsuspended",
        "user_deleted",
        "content_removed",
        "password_reset_limited",
        "email_verification_limited",
    }
)
"""Events that suggest an attack or change privileges; every other event is logged at INFO."""

FORBIDDEN_WORDS = ("password", "passwd", "token", "secret", "key", "authorization", "cookie", "jwt")
"""A field whose name contains one of these is never logged, whatever its value."""

# LogRecord's own attributes: logging refuses an ``extra`` that would overwrite one of them.
_RECORD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

EMAIL_HASH_LENGTH = 12


def email_hash(email: str) -> str:
    """A pseudonym for ``email``: the first 12 hex digits of the SHA-256 of its trimmed, lower-cased form.

    Correlates attempts on one account without writing the address (personal data) to the log.
    It is not anonymous: whoever has a candidate address can compute its hash and compare.
    """
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:EMAIL_HASH_LENGTH]


def _is_forbidden(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in FORBIDDEN_WORDS) or name in _RECORD_ATTRIBUTES


def _no_request() -> str | None:
    return None


_request_id_source: Callable[[], str | None] = _no_request


def use_request_id_source(source: Callable[[], str | None]) -> None:
    """Take the current request id from ``source`` (``graph/observability`` registers its contextvar).

    auth/ imports nothing from graph/: the dependency points the other way.
    """
    global _request_id_source
    _request_id_source = source


def audit(event: str, **fields: object) -> None:
    """Log the security ``event`` (a snake_case name from the module docstring's list) with ``fields``.

    ``request_id`` defaults to the id of the request being handled and ``viewer_id`` to ``None``;
    pass either to override. Field values should be short scalars (str, int, bool, None). Fields
    named after credentials (``FORBIDDEN_WORDS``) or after ``LogRecord`` attributes are dropped,
    never logged; their names are listed in ``dropped_fields``. Never raises for a bad field name:
    a mistake in an audit call must not turn a refused login into a server error.
    """
    dropped = sorted(name for name in fields if _is_forbidden(name))
    kept = {name: value for name, value in fields.items() if name not in dropped}
    extra: dict[str, object] = {
        "event": event,
        "request_id": kept.pop("request_id", None) or _request_id_source(),
        "viewer_id": kept.pop("viewer_id", None),
        **kept,
    }
    if dropped:
        extra["dropped_fields"] = dropped
    summary = " ".join([event, *(f"{name}={value}" for name, value in kept.items())])
    level = logging.WARNING if event in WARNING_EVENTS else logging.INFO
    logger.log(level, "%s", summary, extra=extra)
