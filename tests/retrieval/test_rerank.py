"""The reranking stage over the fused top hits: pure, unit-tested without an index."""

from __future__ import annotations

from mmrag.ingest.chunk import Chunk, Modality, Page, Rows, Section
from mmrag.retrieval.query import analyse
from mmrag.retrieval.rerank import rerank
from mmrag.retrieval.store import Hit


def _hit(source: str, text: str, score: float, *, kind: str = "pdf", modality: Modality = Modality.TEXT) -> Hit:
    locator = Rows(1, 5) if modality is Modality.TABLE else Page(1)
    return Hit(Chunk(source, modality, locator, text), score, "/drive", kind=kind)


def test_the_page_with_the_rare_word_comes_first() -> None:
    hits = [
        _hit("rules.pdf", "Each code number of a controlled substance is filed in the schedule.", 1.0),
        _hit("rules.pdf", "The code number and the schedule number are filed with the form.", 0.95),
        _hit("rules.pdf", "Schedule I opiates, with their code number: Heroin ... 9200. Morphine ... 9300.", 0.85),
    ]
    top = rerank(analyse("What code number is heroin filed under in the schedules?"), hits, 3)
    assert "Heroin" in top[0].chunk.text


def test_a_chunk_with_the_questions_year_and_name_beats_a_closer_one_without() -> None:
    hits = [
        _hit("a.pdf", "Northwind revenue in 2021 was 4.1 million.", 1.0),
        _hit("b.pdf", "Contoso revenue in 2021 was 3.0 million.", 0.98),
        _hit("c.pdf", "Contoso revenue in 2023 was 5.2 million.", 0.8),
    ]
    top = rerank(analyse("What was Contoso's revenue in 2023?"), hits, 3)
    assert top[0].chunk.source == "c.pdf" and top[-1].chunk.source == "a.pdf"


def test_the_medium_the_question_names_is_preferred() -> None:
    hits = [
        _hit("notes.pdf", "Alice sent the report attachment to Bob.", 1.0),
        _hit("mail/report.eml", "From: Alice To: Bob Attachment: report.txt", 0.9, kind="eml"),
    ]
    assert rerank(analyse("What file did Alice attach to her email to Bob?"), hits, 2)[0].kind == "eml"


def test_a_table_summary_gives_way_to_rows_for_a_value_question_only() -> None:
    summary = Hit(
        Chunk("sales.csv", Modality.TABLE, Section(), "sales — table summary\nColumns (3): region, month, units"),
        1.0,
        "/drive",
        kind="csv",
    )
    rows = _hit("sales.csv", "sales — rows 1-5\n| region | month | units |\n| North | May | 40 |", 0.97, kind="csv", modality=Modality.TABLE)
    assert rerank(analyse("How many units did North sell in May?"), [summary, rows], 2)[0] is not summary
    shape = rerank(analyse("Which columns does the sales table have?"), [summary, rows], 2)
    assert shape[0].chunk == summary.chunk


def test_the_fused_score_is_kept_and_the_rerank_score_added() -> None:
    hits = [_hit("a.pdf", "alpha", 0.9), _hit("b.pdf", "beta", 0.8)]
    top = rerank(analyse("alpha?"), hits, 2)
    assert top[0].score == 0.9 and dict(top[0].signals)["rerank"] == 1.0
