"""Ingestor for e-mail messages (.eml).

People search mail by who, when and what: every chunk of a message starts with its From, To, Cc,
Date and Subject headers and the names of its attachments, then the body (text/plain preferred,
HTML converted to text otherwise, through unstructured). Text attachments (.txt, .csv, .md, ...)
are indexed as further chunks at ``Section(("attachment: name",))``; other attachments are listed
by name only (a later ingestor may open them through the registry).
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.message import EmailMessage
from pathlib import Path

from mmrag.ingest.base import ChunkingConfig
from mmrag.ingest.chunk import Chunk
from mmrag.ingest.errors import IngestError
from mmrag.ingest.formats import unstructured_adapter as ua
from mmrag.ingest.formats.documents import (
    EMPTY,
    Group,
    build_chunks,
    context_line,
    decode_text,
    library_error,
    read_nonempty,
)

_HEADERS = ("Subject", "From", "To", "Cc", "Date", "Organization")
_VALUE_MAX = 300
_SPACES = re.compile(r"\s+")
_PARAGRAPHS = re.compile(r"\n\s*\n")


@dataclass(frozen=True, slots=True)
class Attachment:
    name: str
    text: str  # empty unless the attachment is text


@dataclass(frozen=True, slots=True)
class EmailIngestor:
    """E-mail messages (.eml): headers and attachment names on every chunk, body, text attachments."""

    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)

    def ingest(self, path: Path, source: str) -> Iterator[Chunk]:
        data = read_nonempty(path)
        message = email.message_from_bytes(data, policy=email.policy.default)
        if not isinstance(message, EmailMessage) or not message.keys():
            raise IngestError(path, "not an e-mail message (no headers found)")
        headers = {name: _header(message, name) for name in _HEADERS}
        attachments = _attachments(message)
        try:
            blocks = ua.partition_email_body(str(path))
        except Exception as e:  # any failure of the library on this file means an unusable body
            raise library_error(path, "e-mail body that cannot be read", e) from e
        title = headers["Subject"]
        head = _header_block(headers, [a.name for a in attachments], self.chunking.max_chars // 4)
        body = tuple(block.text if block.kind is not ua.BlockKind.TABLE else "\n".join(block.rows) for block in blocks)
        # The headers alone are worth a chunk (who wrote to whom, when, with what attached).
        groups = [Group((), None, body or ("(no message body)",))]
        groups += [
            Group((f"attachment: {a.name}",), None, tuple(_PARAGRAPHS.split(a.text))) for a in attachments if a.text
        ]
        limit = self.chunking.max_chars // 4
        chunks = build_chunks(
            source,
            groups,
            title=title,
            chunking=self.chunking,
            header=lambda group: head if not group.path else context_line(title, group.path, limit),
        )
        if not head and not body:
            raise IngestError(path, EMPTY)
        yield from chunks


def _header(message: EmailMessage, name: str) -> str:
    raw = [value for key, value in message.raw_items() if key.lower() == name.lower()]
    try:
        text = ", ".join(str(value) for value in message.get_all(name, failobj=[]))
        if any("(" in r and ")" in r for r in raw):  # "mangi@host (Richard Mangi)": the comment is the name
            text = ", ".join(str(make_header(decode_header(r))) for r in raw)
    except (ValueError, TypeError, IndexError, AttributeError):  # a header the policy cannot parse: keep it raw
        text = ", ".join(raw)
    text = _SPACES.sub(" ", text).strip()
    return text if len(text) <= _VALUE_MAX else text[: _VALUE_MAX - 1] + "…"


def _header_block(headers: dict[str, str], attachment_names: list[str], limit: int) -> str:
    lines = [f"{name}: {value}" for name, value in headers.items() if value]
    if attachment_names:
        lines.append("Attachments: " + ", ".join(attachment_names))
    block = "\n".join(lines)
    return block if len(block) <= limit else block[: max(0, limit - 1)].rstrip() + "…"


def _attachments(message: EmailMessage) -> list[Attachment]:
    found: list[Attachment] = []
    for number, part in enumerate(message.iter_attachments(), start=1):
        name = _SPACES.sub(" ", part.get_filename() or "").strip() or f"attachment {number} ({part.get_content_type()})"
        found.append(Attachment(name, _attachment_text(part)))
    return found


def _attachment_text(part: EmailMessage, depth: int = 0) -> str:
    if part.get_content_maintype() == "message" and depth < 3:
        return _forwarded_text(part, depth)
    if part.get_content_maintype() != "text" or part.get_content_subtype() == "html":
        return ""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes) or not payload.strip():
        return ""
    charset = part.get_content_charset()
    if charset:
        try:
            return payload.decode(charset).replace("\r\n", "\n").strip()
        except (LookupError, UnicodeDecodeError):
            pass
    try:
        return decode_text(payload, Path(part.get_filename() or "attachment")).strip()
    except IngestError:  # binary content labelled as text: list it by name only
        return ""


def _forwarded_text(part: EmailMessage, depth: int) -> str:
    """A forwarded message (message/rfc822, message/news) as its own headers and text body."""
    inner = part.get_payload()
    message = inner[0] if isinstance(inner, list) and inner else inner
    if not isinstance(message, EmailMessage):
        raw = part.get_payload(decode=True)
        if not isinstance(raw, bytes):
            return ""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        if not isinstance(parsed, EmailMessage):
            return ""
        message = parsed
    lines = [f"{name}: {value}" for name in _HEADERS if (value := _header(message, name))]
    body = message.get_body(preferencelist=("plain",))
    text = ""
    if isinstance(body, EmailMessage):
        text = _attachment_text(body, depth + 1) if body is not message else _plain(body)
    elif not message.is_multipart():
        text = _plain(message)
    return "\n".join(lines) + ("\n\n" + text if text else "")


def _plain(message: EmailMessage) -> str:
    payload = message.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = message.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace").replace("\r\n", "\n").strip()
    except LookupError:
        return payload.decode("latin-1", errors="replace").strip()
