"""The LangChain retriever: LangChain's standard retriever suite, and what a LangChain user reads from it."""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_tests.integration_tests import RetrieversIntegrationTests

from mmrag.ingest.chunk import Modality
from mmrag.pipeline.api import ingest
from mmrag.pipeline.config import load_config
from mmrag.pipeline.langchain_retriever import MmragRetriever
from mmrag.retrieval.embed import HashEmbedder

SAMPLE_PDF = Path(__file__).resolve().parents[2] / "data" / "sample-drive" / "reports" / "multi_page.pdf"
EMBEDDER = HashEmbedder(128)  # the index below is built with it, so every retriever must search with it


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    drive = tmp_path_factory.mktemp("drive")
    (drive / "finance").mkdir()
    (drive / "notes").mkdir()
    (drive / "finance" / "budget.txt").write_text("The travel budget for 2025 is 48,000 euros, approved in March.\n")
    (drive / "finance" / "invoices.md").write_text(
        "# Invoices\n\nInvoice 4711 from Acme covers the office chairs; it is due on 30 June.\n"
    )
    (drive / "notes" / "plan.md").write_text("# Roadmap\n\n## Q4\n\nShip the quantum widget by December.\n")
    (drive / "notes" / "ducks.txt").write_text("A male duck is called a drake; a female duck is a hen.\n")
    shutil.copy(SAMPLE_PDF, drive / "notes" / "word-processors.pdf")
    home = tmp_path_factory.mktemp("home")
    cfg = load_config(index_dir=home / "index", env={"XDG_CONFIG_HOME": str(home / "config")})
    report = ingest([drive], cfg, embedder=EMBEDDER)
    assert report.skipped == [] and len(report.ingested) == 5
    return cfg.index_dir


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def retriever(index_dir: Path) -> Iterator[MmragRetriever]:
    with MmragRetriever(index_dir=index_dir, embedder=EMBEDDER) as r:
        yield r


class TestStandardRetrieverSuite(RetrieversIntegrationTests):
    """LangChain's own contract for retrievers (k in the constructor and per call, sync and async)."""

    pytestmark = pytest.mark.anyio  # runs the suite's one async test; sync tests ignore the mark

    index: Path

    @pytest.fixture(autouse=True)
    def _built(self, index_dir: Path) -> None:
        self.index = index_dir

    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        return MmragRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"index_dir": self.index, "embedder": EMBEDDER}

    @property
    def retriever_query_example(self) -> str:
        return "who made word processors popular with legal professionals"


def test_pdf_hit_carries_its_page_and_citation(retriever: MmragRetriever) -> None:
    docs = retriever.invoke("WordPerfect legal professionals MacWrite")
    top = docs[0]
    assert top.metadata["source"] == "notes/word-processors.pdf"
    assert top.metadata["locator"] == {"page": 2} and top.metadata["cite"] == "p. 2"
    assert top.metadata["modality"] == "text" and "WordPerfect" in top.page_content
    assert 0.0 < top.metadata["score"] <= 1.0 and top.metadata["root"]
    assert top.id and len({d.id for d in docs}) == len(docs)


def test_exact_number_is_found_and_metadata_is_plain_json(retriever: MmragRetriever) -> None:
    import json

    top = retriever.invoke("invoice 4711", k=2)[0]
    assert top.metadata["source"] == "finance/invoices.md" and "4711" in top.page_content
    assert json.loads(json.dumps(top.metadata)) == top.metadata


def test_filters_restrict_every_result(index_dir: Path) -> None:
    query = "budget invoice duck roadmap word processor"
    with MmragRetriever(index_dir=index_dir, embedder=EMBEDDER, folders=("finance",), k=10) as finance:
        sources = {d.metadata["source"] for d in finance.invoke(query)}
    assert sources == {"finance/budget.txt", "finance/invoices.md"}
    with MmragRetriever(index_dir=index_dir, embedder=EMBEDDER, kinds=("pdf",), k=10) as pdfs:
        docs = pdfs.invoke(query)
    assert docs and {d.metadata["source"] for d in docs} == {"notes/word-processors.pdf"}
    with MmragRetriever(index_dir=index_dir, embedder=EMBEDDER, globs=("*.txt",), modalities=(Modality.TEXT,)) as txt:
        assert {d.metadata["source"] for d in txt.invoke(query)} == {"finance/budget.txt", "notes/ducks.txt"}
    with MmragRetriever(index_dir=index_dir, embedder=EMBEDDER, modalities=(Modality.IMAGE,)) as images:
        assert images.invoke(query) == []
    future = datetime.now() + timedelta(days=1)
    with MmragRetriever(index_dir=index_dir, embedder=EMBEDDER, modified_after=future) as later:
        assert later.invoke(query) == []


def test_sync_and_async_calls_from_other_threads_share_one_open_index(retriever: MmragRetriever) -> None:
    """The index's SQLite connections belong to one thread: callers on any thread must still work."""
    folder = MmragRetriever(index_dir=retriever.index_dir, embedder=EMBEDDER, folders=("notes",))
    results: list[list[Document]] = [folder.invoke("drake")]
    worker = threading.Thread(target=lambda: results.append(folder.invoke("duck hen")))
    worker.start()
    worker.join()
    results.append(asyncio.run(folder.ainvoke("quantum widget", k=1)))
    folder.close()
    results.append(folder.invoke("drake"))  # reopens after close
    folder.close()
    assert [r[0].metadata["source"] for r in results] == [
        "notes/ducks.txt",
        "notes/ducks.txt",
        "notes/plan.md",
        "notes/ducks.txt",
    ]
    assert len(results[2]) == 1


def test_bad_k_and_missing_index_are_clear_errors(tmp_path: Path, retriever: MmragRetriever) -> None:
    from pydantic import ValidationError

    from mmrag.retrieval.store import IndexMismatch

    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        MmragRetriever(index_dir=tmp_path, k=0)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        retriever.invoke("duck", k=0)
    with (
        MmragRetriever(index_dir=tmp_path / "nowhere", embedder=EMBEDDER) as missing,
        pytest.raises(IndexMismatch, match="no index at"),
    ):
        missing.invoke("duck")


def test_langchain_is_not_imported_by_the_cli() -> None:
    import subprocess
    import sys

    code = "import sys, mmrag.pipeline.cli, mmrag.pipeline.api; print('langchain_core' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
