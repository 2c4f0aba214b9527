"""The documented Python API keeps an index open between calls; ``close`` releases it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from fakes import CountingEmbedder

from mmrag.pipeline import api
from mmrag.pipeline.app import App
from mmrag.pipeline.config import Config


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The index folders ``open_app`` was asked to open, in order."""
    seen: list[Path] = []
    real = api.open_app

    def counting(cfg: Config, **kwargs: object) -> App:
        seen.append(cfg.index_dir)
        return real(cfg, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(api, "open_app", counting)
    return seen


def test_one_hundred_searches_open_the_index_once(tmp_path: Path, cfg: Config, opened: list[Path]) -> None:
    drive = tmp_path / "drive"
    drive.mkdir()
    (drive / "lisbon.md").write_text("# Lisbon\n\nThe Lisbon office opens at 8:30 on weekdays.\n")
    embedder = CountingEmbedder(64)
    assert api.ingest([drive], cfg, embedder=embedder).ingested == ["lisbon.md"]
    for _ in range(100):
        assert (
            api.search("When does the Lisbon office open?", cfg, k=1, embedder=embedder)[0].chunk.source == "lisbon.md"
        )
    assert "8:30" in api.ask("When does the Lisbon office open?", cfg, embedder=embedder).text
    assert opened == [cfg.index_dir]  # ingest, 100 searches and an answer: one open index

    (drive / "oslo.md").write_text("# Oslo\n\nThe Oslo office opens at 9:00.\n")
    assert api.ingest([drive], cfg, embedder=embedder).ingested == ["oslo.md"]
    assert api.search("Oslo office", cfg, k=1, embedder=embedder)[0].chunk.source == "oslo.md"  # sees its own writes
    assert len(opened) == 1

    api.close(cfg)
    api.search("Oslo office", cfg, k=1, embedder=embedder)
    assert len(opened) == 2  # closed, then opened again on the next call


def test_a_session_is_the_same_for_one_configuration(tmp_path: Path, cfg: Config, opened: list[Path]) -> None:
    drive = tmp_path / "drive"
    drive.mkdir()
    (drive / "a.txt").write_text("The kiln in building 4 is offline until Tuesday.\n")
    with api.Session(cfg, embedder=CountingEmbedder(64)) as session:
        session.ingest([drive])
        assert session.search("kiln offline", k=1)[0].chunk.source == "a.txt"
        assert not session.ask("Is the kiln offline?").declined
    assert opened == [cfg.index_dir]


def test_a_drive_ingested_into_a_chroma_server_is_searched_and_answered_from_it(
    tmp_path: Path, cfg: Config, chroma_server: str, loopback_only: None
) -> None:
    """``[store] kind = "chroma-http"``: the chunks live in a real ``chroma run`` server, not the index folder."""
    import uuid

    from mmrag.pipeline.api import ask, ingest, search
    from mmrag.retrieval.embed import HashEmbedder

    drive = tmp_path / "drive"
    drive.mkdir()
    (drive / "plan.txt").write_text("The office move happens on the ninth of March.\n")
    store = replace(cfg.store, kind="chroma-http", url=chroma_server, collection=f"api{uuid.uuid4().hex[:10]}")
    remote = replace(cfg, store=store)
    embedder = HashEmbedder(64)
    assert ingest([drive], remote, embedder=embedder).ingested == ["plan.txt"]
    assert not (remote.index_dir / "chroma").exists()  # nothing embedded in the index folder
    assert [h.chunk.source for h in search("office move", remote, 3, embedder=embedder)] == ["plan.txt"]
    assert "ninth of March" in ask("When is the office move?", remote, embedder=embedder).text


def test_a_superlative_over_a_table_puts_the_row_with_the_maximum_first(tmp_path: Path, cfg: Config) -> None:
    """No text match ranks the row with the largest value first; the computed row leads the search."""
    from mmrag.pipeline.api import ask, ingest, is_computed, search

    drive = tmp_path / "drive"
    drive.mkdir()
    rows = "".join(f"{name},{n}\n" for name, n in [("Ohio", 310), ("Texas", 35596), ("Utah", 210), ("Iowa", 95)])
    (drive / "beneficiaries.csv").write_text("State,Beneficiaries\n" + rows * 1)
    (drive / "memo.txt").write_text("Beneficiaries by state are listed in the yearly report.\n")
    embedder = CountingEmbedder(64)
    ingest([drive], cfg, embedder=embedder)
    hits = search("Which state had the most beneficiaries?", cfg, 5, embedder=embedder)
    assert is_computed(hits[0]) and hits[0].chunk.locator.to_json()["rows"] == [2, 2]
    assert "Texas" in hits[0].chunk.text
    assert not any(is_computed(h) for h in search("beneficiaries memo", cfg, 5, embedder=embedder))
    assert "Texas" in ask("Which state had the most beneficiaries?", cfg, embedder=embedder).text


def test_a_chroma_server_behind_a_token_proxy_is_used_with_the_token_and_refused_without(
    tmp_path: Path, cfg: Config, chroma_behind_proxy: str, loopback_only: None
) -> None:
    """The documented deployment: Chroma on a private address, nginx in front checking a token that
    ``[store] auth_header`` sends with every request."""
    import uuid

    import pytest
    from servers import PROXY_TOKEN

    from mmrag.pipeline.api import close, ingest, search
    from mmrag.retrieval.embed import HashEmbedder

    drive = tmp_path / "drive"
    drive.mkdir()
    (drive / "plan.txt").write_text("The office move happens on the ninth of March.\n")
    collection = f"proxied{uuid.uuid4().hex[:10]}"
    store = replace(
        cfg.store, kind="chroma-http", url=chroma_behind_proxy, collection=collection,
        auth_header=f"Authorization: Bearer {PROXY_TOKEN}",
    )  # fmt: skip
    proxied = replace(cfg, store=store)
    embedder = HashEmbedder(64)
    assert ingest([drive], proxied, embedder=embedder).ingested == ["plan.txt"]
    assert [h.chunk.source for h in search("office move", proxied, 3, embedder=embedder)] == ["plan.txt"]
    close(proxied)

    refused = replace(cfg, store=replace(store, auth_header="Authorization: Bearer wrong-token"))
    from mmrag.retrieval.store import StoreUnreachable

    with pytest.raises(StoreUnreachable, match=r"refused the request .* check \[store\] auth_header"):
        search("office move", refused, 3, embedder=embedder)
