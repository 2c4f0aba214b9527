"""unstructured must work offline: no telemetry, no spaCy model download, no files written to HOME.

Each check runs in a fresh interpreter (the first partition is the one that would download) with
pytest-socket blocking every socket and DNS lookups recorded, HOME and TMPDIR pointed at empty
directories, and the telemetry variables removed so that our module has to set them itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

import docx
import pytest

GUARD = """
import json, socket, sys, traceback
import pytest_socket

attempts = []
pytest_socket.disable_socket(allow_unix_socket=False)
_guarded = socket.socket

class _Recording(_guarded):
    def __new__(cls, *args, **kwargs):
        stack = "".join(traceback.format_stack(limit=8))
        if "_has_ipv6" not in stack:  # urllib3 probes IPv6 support at import; that sends nothing
            attempts.append("socket: " + stack)
        return super().__new__(cls, *args, **kwargs)

def _no_dns(host, *args, **kwargs):
    attempts.append(f"getaddrinfo({host!r})")
    raise pytest_socket.SocketBlockedError()

socket.socket = _Recording
socket.getaddrinfo = _no_dns
"""

OURS = (
    GUARD
    + """
from pathlib import Path
from mmrag.ingest.base import ChunkingConfig, IngestSettings
from mmrag.ingest.detect import FileKind
from mmrag.ingest.filetypes import ingestor_for

counts = {}
for path in sorted(Path(sys.argv[1]).iterdir()):
    kind = FileKind[path.suffix[1:].upper()]
    ingestor = ingestor_for(kind, IngestSettings())
    counts[path.name] = len(list(ingestor.ingest(path, path.name)))
print(json.dumps({"counts": counts, "attempts": attempts}))
"""
)

BARE = (
    GUARD
    + """
from unstructured.partition.docx import partition_docx
error = ""
try:
    partition_docx(filename=sys.argv[1] + "/sample.docx")
except BaseException as e:
    error = f"{type(e).__name__}: {e}"
print(json.dumps({"error": error, "attempts": attempts}))
"""
)


def _inputs(folder: Path) -> None:
    folder.mkdir()
    document = docx.Document()
    document.add_heading("Quarterly Review", level=1)
    document.add_paragraph("Revenue grew in every region.")  # a sentence: classified through spaCy
    document.add_paragraph("Short line")
    document.save(str(folder / "sample.docx"))
    (folder / "page.html").write_text("<h1>Ducks</h1><p>A male duck is called a drake.</p>", encoding="utf-8")
    (folder / "notes.md").write_text("# Notes\n\nThe backup runs nightly.\n", encoding="utf-8")
    (folder / "plain.txt").write_text("Meeting Notes\n\nWe agreed to ship in May.\n", encoding="utf-8")
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.com", "b@example.com", "Hello"
    message.set_content("Please find the file attached.")
    message.add_attachment(b"attached words", maintype="text", subtype="plain", filename="test.txt")
    (folder / "mail.eml").write_bytes(message.as_bytes())


def _run(script: str, tmp_path: Path) -> tuple[dict[str, object], Path, Path]:
    inputs, home, tmp = tmp_path / "inputs", tmp_path / "home", tmp_path / "tmp"
    _inputs(inputs)
    home.mkdir()
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("DO_NOT_TRACK", "SCARF_NO_ANALYTICS")}
    env.update(HOME=str(home), TMPDIR=str(tmp), XDG_CACHE_HOME=str(home / ".cache"), UNSTRUCTURED_DISABLE_NOTICE="1")
    done = subprocess.run(
        [sys.executable, "-c", script, str(inputs)], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), home, tmp


def _spacy_model_installed() -> bool:
    return any((Path(p) / "en_core_web_sm").exists() for p in sys.path if p)


def test_first_partition_of_every_format_stays_offline(tmp_path: Path) -> None:
    if _spacy_model_installed():
        pytest.skip("en_core_web_sm is installed here, so the download path cannot be exercised")
    result, home, tmp = _run(OURS, tmp_path)
    assert result["attempts"] == []  # no socket opened and no DNS lookup, telemetry included
    assert result["counts"] == {"mail.eml": 2, "notes.md": 1, "page.html": 1, "plain.txt": 1, "sample.docx": 1}
    assert list(home.rglob("*")) == []  # no nltk_data, spacy or cache directories appeared
    assert list(tmp.rglob("*en_core_web_sm*")) == []  # unstructured's install lock is made before a download
    assert not _spacy_model_installed()


@pytest.mark.slow
def test_the_guard_catches_unstructured_when_used_bare(tmp_path: Path) -> None:
    """Control: without our adapter, the same harness sees the spaCy download and the telemetry."""
    if _spacy_model_installed():
        pytest.skip("en_core_web_sm is installed here, so the download path cannot be exercised")
    result, _, tmp = _run(BARE, tmp_path)
    assert "en_core_web_sm" in str(result["error"]) or "SocketBlocked" in str(result["error"])
    assert result["attempts"]  # telemetry ping and/or the model download tried the network
    assert list(tmp.rglob("*en_core_web_sm*"))


def test_importing_the_ingestors_does_not_import_unstructured() -> None:
    code = (
        "import sys, os; import mmrag.ingest.filetypes, mmrag.ingest.formats.documents, mmrag.ingest.formats.mail;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('unstructured', 'spacy', 'pypdfium2', 'torch')));"
        "print(os.environ['DO_NOT_TRACK'], os.environ['SCARF_NO_ANALYTICS'])"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DO_NOT_TRACK", "SCARF_NO_ANALYTICS")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == ["[]", "true true"]
