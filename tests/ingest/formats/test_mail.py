from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest

from mmrag.ingest.base import ChunkingConfig
from mmrag.ingest.chunk import Chunk, Section
from mmrag.ingest.errors import IngestError
from mmrag.ingest.formats.mail import EmailIngestor


def _message(subject: str = "Q3 budget review") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Alice Martin <alice@example.com>"
    message["To"] = "Bob Stone <bob@example.com>, carol@example.com"
    message["Cc"] = "finance@example.com"
    message["Date"] = "Tue, 01 Oct 2024 12:34:56 -0500"
    message["Subject"] = subject
    return message


def _ingest(message: EmailMessage, tmp_path: Path, chunking: ChunkingConfig | None = None) -> list[Chunk]:
    path = tmp_path / "mail.eml"
    path.write_bytes(message.as_bytes())
    return [
        c for c in EmailIngestor(chunking or ChunkingConfig()).ingest(path, "mail/mail.eml") if isinstance(c, Chunk)
    ]


def test_body_chunk_carries_headers_and_attachment_names(tmp_path: Path) -> None:
    message = _message()
    message.set_content("Hi Bob,\n\nThe travel budget is 42,000 euros.\n\nAlice")
    message.add_attachment(b"%PDF-1.4 not really", maintype="application", subtype="pdf", filename="budget.pdf")
    message.add_attachment(b"line one\nline two\n", maintype="text", subtype="plain", filename="notes.txt")
    body, *rest = _ingest(message, tmp_path)
    assert body.locator == Section()
    assert body.title == "Q3 budget review"
    assert body.text.splitlines()[:6] == [
        "Subject: Q3 budget review",
        "From: Alice Martin <alice@example.com>",
        "To: Bob Stone <bob@example.com>, carol@example.com",
        "Cc: finance@example.com",
        "Date: Tue, 01 Oct 2024 12:34:56 -0500",
        "Attachments: budget.pdf, notes.txt",
    ]
    assert "The travel budget is 42,000 euros." in body.text
    # Only the text attachment has content to index; the PDF is listed by name.
    assert [c.locator for c in rest] == [Section(("attachment: notes.txt",))]
    assert rest[0].text == "Q3 budget review > attachment: notes.txt\n\nline one\nline two"


def test_plain_text_body_is_preferred_over_html(tmp_path: Path) -> None:
    message = _message()
    message.set_content("The plain version says 1971.")
    message.add_alternative("<html><body><p>The HTML version says 1978.</p></body></html>", subtype="html")
    (body,) = _ingest(message, tmp_path)
    assert "1971" in body.text and "1978" not in body.text


def test_html_only_body_is_converted_to_text(tmp_path: Path) -> None:
    message = _message()
    message.set_content(
        "<html><body><h1>Notice</h1><p>The office is <b>closed</b> on Friday.</p></body></html>", "html"
    )
    (body,) = _ingest(message, tmp_path)
    assert "The office is closed on Friday." in body.text
    assert "<p>" not in body.text


def test_encoded_headers_are_decoded(tmp_path: Path) -> None:
    message = _message(subject="Réunion à Zürich – ordre du jour")
    message.set_content("Voir ci-dessous.")
    (body,) = _ingest(message, tmp_path)
    assert body.title == "Réunion à Zürich – ordre du jour"
    assert "Subject: Réunion à Zürich – ordre du jour" in body.text


def test_long_body_repeats_the_headers_on_every_chunk(tmp_path: Path) -> None:
    message = _message()
    message.set_content("\n\n".join(f"Point {i}: the supplier invoice {i} was paid late." for i in range(60)))
    chunking = ChunkingConfig(target_chars=500, max_chars=800, overlap_chars=50)
    chunks = _ingest(message, tmp_path, chunking)
    assert len(chunks) > 3
    assert all(c.text.startswith("Subject: Q3 budget review\nFrom: Alice Martin") for c in chunks)
    assert all(len(c.text) <= 800 for c in chunks)
    assert [c.part for c in chunks] == list(range(len(chunks)))


def test_message_without_body_still_gives_its_headers(tmp_path: Path) -> None:
    message = _message()
    message.add_attachment(b"\x89PNG...", maintype="image", subtype="png", filename="chart.png")
    (body,) = _ingest(message, tmp_path)
    assert "Attachments: chart.png" in body.text


def test_empty_eml(tmp_path: Path) -> None:
    path = tmp_path / "empty.eml"
    path.write_bytes(b"")
    with pytest.raises(IngestError, match="no text found"):
        list(EmailIngestor().ingest(path, "empty.eml"))


def test_a_forwarded_message_is_read_with_its_own_headers(tmp_path: Path) -> None:
    inner = (
        "From: mangi@moondog.example (Richard Mangi)\nSubject: Secure servers\nOrganization: Visual Numerics\n"
        "Date: Mon, 01 Jul 1996 17:00:16 +0000\n\nWe will be running the server from a Sun Ultra.\n"
    )
    outer = (
        "From: Rob Hartill <hartill@lanl.example>\nTo: list@example.org\nSubject: [Fwd: Secure servers]\n"
        "Organization: Los Alamos National Laboratory\nMIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="b1"\n\n--b1\nContent-Type: text/plain\n\nSomeone for you.\n'
        f"--b1\nContent-Type: message/news\n\n{inner}\n--b1--\n"
    )
    path = tmp_path / "fwd.eml"
    path.write_text(outer)
    chunks = list(EmailIngestor().ingest(path, "fwd.eml"))
    text = "\n".join(c.text for c in chunks)
    assert "Organization: Los Alamos National Laboratory" in chunks[0].text  # who the sender works for
    assert "Sun Ultra" in text and "Richard Mangi" in text  # the forwarded message, and its author's name
