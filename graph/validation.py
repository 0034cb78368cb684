"""Input rules of the contract README (Authentication, Articles), with RealWorld's wording."""

from __future__ import annotations

import re
import secrets
import string

from strawberry import UNSET
from unidecode import unidecode

from graph.errors import FieldErrors

USERNAME = re.compile(r"[A-Za-z0-9_-]{1,32}")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
URL = re.compile(r"https?://[^\s/$.?#][^\s]*", re.IGNORECASE)

TITLE_MAX = 200
DESCRIPTION_MAX = 1_000
BODY_MAX = 100_000
COMMENT_MAX = 10_000
TAGS_MAX = 10
TAG_MAX = 40
BIO_MAX = 1_000
IMAGE_MAX = 2_000
EMAIL_MAX = 254
PASSWORD_MIN = 8
PASSWORD_MAX = 256

CANT_BE_EMPTY = "can't be empty"
TOO_LONG = "is too long"
TOO_SHORT = "is too short"
INVALID = "is invalid"
TAKEN = "has already been taken"


def given(value: object) -> bool:
    """Whether an optional input field was given a value (neither omitted nor ``null``)."""
    return value is not UNSET and value is not None


def check_text(errors: FieldErrors, name: str, value: str, maximum: int) -> str:
    """``value`` unchanged; records "can't be empty" (blank) or "is too long" on ``name``."""
    if not value.strip():
        errors.add(name, CANT_BE_EMPTY)
    elif len(value) > maximum:
        errors.add(name, TOO_LONG)
    return value


def check_username(errors: FieldErrors, value: str) -> str:
    """1 to 32 letters, digits, ``_`` or ``-`` (case-sensitive)."""
    if not value:
        errors.add("username", CANT_BE_EMPTY)
    elif len(value) > 32:
        errors.add("username", TOO_LONG)
    elif not USERNAME.fullmatch(value):
        errors.add("username", INVALID)
    return value


def check_email(errors: FieldErrors, value: str) -> str:
    """A plausible address of at most 254 characters, trimmed."""
    value = value.strip()
    if not value:
        errors.add("email", CANT_BE_EMPTY)
    elif len(value) > EMAIL_MAX:
        errors.add("email", TOO_LONG)
    elif not EMAIL.fullmatch(value):
        errors.add("email", INVALID)
    return value


def check_password(errors: FieldErrors, value: str) -> str:
    """8 to 256 characters."""
    if not value:
        errors.add("password", CANT_BE_EMPTY)
    elif len(value) < PASSWORD_MIN:
        errors.add("password", TOO_SHORT)
    elif len(value) > PASSWORD_MAX:
        errors.add("password", TOO_LONG)
    return value


def check_bio(errors: FieldErrors, value: str | None) -> str | None:
    """At most 1,000 characters; an empty bio clears it."""
    if value is None or not value.strip():
        return None
    if len(value) > BIO_MAX:
        errors.add("bio", TOO_LONG)
    return value


def check_image(errors: FieldErrors, value: str | None) -> str | None:
    """An ``http(s)`` URL of at most 2,000 characters; an empty image clears it."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if len(value) > IMAGE_MAX:
        errors.add("image", TOO_LONG)
    elif not URL.fullmatch(value):
        errors.add("image", INVALID)
    return value


def clean_tags(errors: FieldErrors, values: list[str]) -> list[str]:
    """Trimmed tags in the author's order, without duplicates or empty strings (at most 10 of 40)."""
    tags: list[str] = []
    for value in values:
        tag = value.strip()
        if tag and tag not in tags:
            tags.append(tag)
    if len(tags) > TAGS_MAX:
        errors.add("tagList", TOO_LONG)
    if any(len(tag) > TAG_MAX for tag in tags):
        errors.add("tagList", INVALID)
    return tags


def slugify(title: str) -> str:
    """Lower case ASCII words of ``title`` joined by ``-`` (non-ASCII transliterated), or "article"."""
    words = re.findall(r"[a-z0-9]+", unidecode(title).lower())
    return "-".join(words)[:120].strip("-") or "article"


def slug_suffix() -> str:
    """A short random suffix that makes a taken slug unique."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(6))
