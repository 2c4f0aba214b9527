"""Filters are parsed in one place: every front-end accepts the same spellings and refuses the same mistakes."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from mmrag.ingest.chunk import Modality
from mmrag.pipeline.filters import FilterError, parse_filters


def test_repeated_and_comma_separated_values_are_the_same() -> None:
    a = parse_filters(modalities=["text,table"], kinds=["PDF", ".docx"])
    b = parse_filters(modalities=["text", "table"], kinds=["pdf,docx"])
    assert a == b
    assert a.modalities == {Modality.TEXT, Modality.TABLE} and a.kinds == {"pdf", "docx"}


def test_folders_and_patterns_are_taken_whole() -> None:
    flt = parse_filters(folders=["/finance/", "hr/Smith, John", " "], globs=["*.pdf"])
    assert flt.folders == ("finance", "hr/Smith, John") and flt.globs == ("*.pdf",)


def test_before_date_includes_that_whole_day() -> None:
    assert parse_filters(before="2024-01-31").modified_before == datetime(2024, 1, 31, 23, 59, 59, 999999)
    assert parse_filters(before="2024-01-31T08:00").modified_before == datetime(2024, 1, 31, 8, 0)
    assert parse_filters(after="2024-01-31").modified_after == datetime(2024, 1, 31)
    assert parse_filters(before=date(2024, 1, 31)).modified_before == datetime(2024, 1, 31, 23, 59, 59, 999999)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"modalities": ["pictures"]}, "unknown modality 'pictures'"),
        ({"after": "31/01/2024"}, "after takes a date like 2024-01-31"),
        ({"after": "2024-02-01", "before": "2024-01-01"}, "nothing can match"),
    ],
)
def test_mistakes_are_refused_with_what_is_accepted(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(FilterError, match=message):
        parse_filters(**kwargs)  # type: ignore[arg-type]


def test_no_front_end_parses_filters_itself() -> None:
    """The CLI, the HTTP API, MCP and LangChain all call ``parse_filters``; none builds ``Filters`` from raw values."""
    import ast
    from pathlib import Path

    import mmrag.pipeline

    root = Path(mmrag.pipeline.__file__).parent
    builders = []
    for path in root.rglob("*.py"):
        if path.name == "filters.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Filters" and node.keywords:
                builders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert builders == [], f"Filters built outside pipeline/filters.py: {builders}"
