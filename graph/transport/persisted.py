"""Persisted documents: automatic persisted queries (APQ) and trusted documents (an allow-list).

Both let a request name its GraphQL document by hash instead of sending the text. The HTTP
handler (``graph/transport/http.py``) calls ``PersistedQueries.resolve`` right after reading the request
parameters, so planned SQL and graphql-core both see the full document text,
and every check (limits, validation, the mutation-over-GET refusal) applies to it as to any
other document.

Automatic persisted queries, Apollo's protocol
(https://github.com/apollographql/apollo-link-persisted-queries#protocol): the request carries
``extensions: {"persistedQuery": {"version": 1, "sha256Hash": "<64 hex digits>"}}``.

- Hash only: the document remembered under that hash runs; an unknown hash is the error
  ``PersistedQueryNotFound`` (code ``PERSISTED_QUERY_NOT_FOUND``), on which clients resend with
  the text. With APQ turned off (``CONDUIT_APQ_CACHE_SIZE=0`` or ``CONDUIT_CACHE_APQ_MAX_BYTES=0``)
  it is ``PersistedQueryNotSupported`` (code ``PERSISTED_QUERY_NOT_SUPPORTED``), on which clients
  stop sending hashes.
- Text and hash: the hash must be the SHA-256 of the text (UTF-8, lower- or upper-case hex),
  else ``provided sha does not match query`` (``BAD_USER_INPUT``, HTTP 400); the text runs, and is
  remembered once it passed admission (a document that cannot run is never kept).
- Over GET too (``extensions`` as a JSON URL parameter), for queries only as always.

The store is the app's ``apq`` cache (``graph/caches.py``), an LRU per process: nothing is shared
between processes or kept across restarts, which the protocol allows, since a client whose hash
is unknown simply registers it again (one extra round trip). Its bounds (entries, and bytes of
hashes and documents) keep a client that registers many documents from growing the process; a
document larger than the whole byte budget is not kept.

Trusted documents (``CONDUIT_PERSISTED_DOCUMENTS``): a JSON file mapping document id to
document text, as GraphQL Code Generator's client preset writes ``persisted-documents.json``
(``presetConfig.persistedDocuments: {hashAlgorithm: 'sha256'}``: ids are the SHA-256 hex of the
text). Its documents can always be named by hash, by the APQ extension or by ``documentId``
(the GraphQL-over-HTTP "persisted documents" proposal: ``"sha256:<hex>"``, or a bare id from
the file). With ``CONDUIT_PERSISTED_DOCUMENTS_ONLY=true`` nothing else runs: a request must
name a document of the file, or send text whose SHA-256 is one of them, and the APQ store is
not used. Anything else is refused before parsing with code ``PERSISTED_QUERY_NOT_ALLOWED``
(here for unknown ids and hashes, by the admission step ``graph/admission/trusted.py`` for text).

Error codes: the contract README's list has none for persisted documents, so these are
additive. ``PERSISTED_QUERY_NOT_FOUND`` and ``PERSISTED_QUERY_NOT_SUPPORTED`` are fixed by the
APQ protocol (Apollo clients match on them). For the allow-list we chose
``PERSISTED_QUERY_NOT_ALLOWED`` over ``BAD_USER_INPUT`` with a reason: the client must tell "this
will never run here, whatever you send" apart from "your input is invalid, fix it", and a
generic ``BAD_USER_INPUT`` handler would show it as the latter. Like parse and validation
errors, these are request errors (no ``data``): HTTP 400 with
``application/graphql-response+json``, 200 with ``application/json`` (GraphQL over HTTP,
6.4.1 and 6.4.2); a malformed request (bad hash, version, mismatch) is 400 either way.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from graph.caches import BoundedCache

SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
DOCUMENT_ID_PREFIX = "sha256:"
APQ_VERSION = 1

NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
NOT_SUPPORTED = "PERSISTED_QUERY_NOT_SUPPORTED"
NOT_ALLOWED = "PERSISTED_QUERY_NOT_ALLOWED"
NOT_ALLOWED_MESSAGE = (
    "This server runs only its trusted documents: send the 'documentId' (or the persistedQuery "
    "sha256Hash) of a document from its list, or that document's exact text."
)


class PersistedQueryError(Exception):
    """A persisted-document failure, answered as ``{"errors": [{message, extensions: {code}}]}``.

    ``malformed``: the request itself is invalid (HTTP 400 with either media type); otherwise
    it is a request error (400 with ``application/graphql-response+json``, 200 with
    ``application/json``).
    """

    def __init__(self, message: str, code: str = "BAD_USER_INPUT", *, malformed: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.malformed = malformed


def sha256_hex(text: str) -> str:
    """The SHA-256 of ``text`` encoded as UTF-8, as 64 lower-case hex digits (the APQ hash)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class TrustedDocuments:
    """The documents of a persisted-documents file, by id and by the SHA-256 of their text.

    ``documents`` maps id to text. An id of 64 hex digits must be the SHA-256 of its text
    (``ValueError`` otherwise), so a list generated with another hash algorithm, or a file
    edited by hand, is refused rather than half working.
    """

    def __init__(self, documents: Mapping[str, str]) -> None:
        self.by_id: dict[str, str] = {}
        self.by_hash: dict[str, str] = {}
        for document_id, text in documents.items():
            digest = sha256_hex(text)
            if SHA256_HEX.fullmatch(document_id) and document_id.lower() != digest:
                raise ValueError(
                    f"document {document_id[:16]}... is not the SHA-256 of its text "
                    "(generate the list with hashAlgorithm: 'sha256')"
                )
            self.by_id[document_id] = text
            self.by_hash[digest] = text

    @classmethod
    def load(cls, path: Path) -> TrustedDocuments:
        """Read a persisted-documents JSON file; ``ValueError`` (naming ``path``) when it is unusable."""
        try:
            data: Any = orjson.loads(path.read_bytes())
        except OSError as error:
            raise ValueError(f"CONDUIT_PERSISTED_DOCUMENTS: cannot read {path}: {error.strerror}") from None
        except orjson.JSONDecodeError as error:
            raise ValueError(f"CONDUIT_PERSISTED_DOCUMENTS: {path} is not valid JSON: {error}") from None
        if not isinstance(data, dict) or not all(
            isinstance(key, str) and isinstance(value, str) and key and value for key, value in data.items()
        ):
            raise ValueError(f"CONDUIT_PERSISTED_DOCUMENTS: {path} must be a JSON object of document id to text")
        if not data:
            raise ValueError(f"CONDUIT_PERSISTED_DOCUMENTS: {path} has no documents")
        try:
            return cls(data)
        except ValueError as error:
            raise ValueError(f"CONDUIT_PERSISTED_DOCUMENTS: {path}: {error}") from None

    def __len__(self) -> int:
        return len(self.by_id)

    def get(self, document_id: str) -> str | None:
        """The text a ``documentId`` names (``sha256:<hex>``, or an id of the file), or ``None``."""
        if document_id.startswith(DOCUMENT_ID_PREFIX):
            return self.by_hash.get(document_id[len(DOCUMENT_ID_PREFIX) :].lower())
        return self.by_id.get(document_id)

    def trust(self, texts: Iterable[str]) -> None:
        """Trust the server's own documents too (``/api``'s stored operations), by their hash only."""
        for text in texts:
            self.by_hash[sha256_hex(text)] = text

    def trusts(self, text: str) -> bool:
        """Whether ``text`` is exactly one of the documents."""
        return self.by_hash.get(sha256_hex(text)) == text


@dataclass(frozen=True)
class Document:
    """A request's document text, and its ``extensions`` without ``persistedQuery`` (``None`` when empty).

    ``register`` is the APQ hash the text was sent with, to remember once the document is admitted.
    """

    query: str
    extensions: dict[str, Any] | None
    register: str | None = None


class PersistedQueries:
    """Resolves a request's document from its ``query``, ``documentId`` and ``persistedQuery`` (module docstring).

    ``trusted``: the trusted documents, if configured; ``only_trusted``: refuse everything else;
    ``store``: the APQ documents by lower-case SHA-256 hex (APQ is off without one, with one that
    can hold nothing, and with ``only_trusted``).
    """

    def __init__(
        self,
        *,
        trusted: TrustedDocuments | None = None,
        only_trusted: bool = False,
        store: BoundedCache[str, str] | None = None,
    ) -> None:
        if only_trusted and trusted is None:
            raise ValueError("CONDUIT_PERSISTED_DOCUMENTS_ONLY needs CONDUIT_PERSISTED_DOCUMENTS")
        self.trusted = trusted
        self.only_trusted = only_trusted
        usable = store is not None and store.max_entries > 0 and store.max_bytes > 0
        self.store = store if usable and not only_trusted else None

    def resolve(self, query: str | None, document_id: str | None, extensions: dict[str, Any] | None) -> Document:
        """The document to run; raises ``PersistedQueryError`` (see the class and module docstrings).

        ``query`` and ``document_id`` are strings or ``None`` (already checked by the caller);
        ``extensions`` is the request's object, left unchanged (a copy drops ``persistedQuery``).
        """
        persisted = extensions.get("persistedQuery") if extensions else None
        rest = {key: value for key, value in extensions.items() if key != "persistedQuery"} if extensions else None
        rest = rest or None
        if document_id is not None:
            if query is not None or persisted is not None:
                raise PersistedQueryError("Send either 'documentId' or the document, not both.", malformed=True)
            return Document(self._by_document_id(document_id), rest)
        if persisted is not None:
            digest = _apq_hash(persisted)
            if query is None:
                return Document(self._by_hash(digest), rest)
            if sha256_hex(query) != digest:
                raise PersistedQueryError("provided sha does not match query", malformed=True)
            return Document(query, rest, register=digest)
        if query is None:
            raise PersistedQueryError("The 'query' parameter is required.", malformed=True)
        return Document(query, rest)

    def remember(self, document: Document) -> None:
        """Keep ``document`` under its APQ hash, if it was sent with one: call once it was admitted,
        so the store never holds a document that cannot run (unparsable, invalid, refused)."""
        if document.register is not None and self.store is not None:
            self.store.put(
                document.register, document.query, sys.getsizeof(document.register) + sys.getsizeof(document.query)
            )

    def _by_document_id(self, document_id: str) -> str:
        text = self.trusted.get(document_id) if self.trusted is not None else None
        if text is None and self.store is not None and document_id.startswith(DOCUMENT_ID_PREFIX):
            text = self.store.get(document_id[len(DOCUMENT_ID_PREFIX) :].lower())
        if text is None:
            if self.only_trusted:
                raise PersistedQueryError(NOT_ALLOWED_MESSAGE, NOT_ALLOWED)
            raise PersistedQueryError("PersistedQueryNotFound", NOT_FOUND)
        return text

    def _by_hash(self, digest: str) -> str:
        text = self.trusted.by_hash.get(digest) if self.trusted is not None else None
        if text is None and self.store is not None:
            text = self.store.get(digest)
        if text is not None:
            return text
        if self.only_trusted:
            raise PersistedQueryError(NOT_ALLOWED_MESSAGE, NOT_ALLOWED)
        if self.store is None:
            raise PersistedQueryError("PersistedQueryNotSupported", NOT_SUPPORTED)
        raise PersistedQueryError("PersistedQueryNotFound", NOT_FOUND)


def _apq_hash(persisted: Any) -> str:
    """The lower-case ``sha256Hash`` of an APQ ``persistedQuery`` extension; malformed ones raise."""
    if not isinstance(persisted, dict):
        raise PersistedQueryError("The 'persistedQuery' extension must be an object.", malformed=True)
    if persisted.get("version") != APQ_VERSION:
        raise PersistedQueryError("Unsupported persisted query version", malformed=True)
    digest = persisted.get("sha256Hash")
    if not isinstance(digest, str) or not SHA256_HEX.fullmatch(digest):
        raise PersistedQueryError("The persistedQuery 'sha256Hash' must be 64 hexadecimal digits.", malformed=True)
    return digest.lower()


def load_trusted_documents(path: Path | None, only: bool) -> TrustedDocuments | None:
    """The trusted documents of ``CONDUIT_PERSISTED_DOCUMENTS`` (``None`` when unset).

    Raises ``ValueError`` when the file is unusable, or when ``only``
    (``CONDUIT_PERSISTED_DOCUMENTS_ONLY``) is set without a file: the server then refuses to start.
    """
    if path is None:
        if only:
            raise ValueError("CONDUIT_PERSISTED_DOCUMENTS_ONLY needs CONDUIT_PERSISTED_DOCUMENTS")
        return None
    return TrustedDocuments.load(path)
