"""Table questions in plain words become one SELECT over one table (no LLM); generic tables made here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mmrag.ingest.chunk import Rows, Section
from mmrag.ingest.chunk import Table as TableData
from mmrag.pipeline.answer.table_query import best_plan, direction, plan_question, run_plan
from mmrag.retrieval.tables_sql import TableInfo, TableStore

ORDERS = TableData(
    "sales/orders.csv",
    "orders",
    ("OrderID", "Product", "City", "ShipAgency", "Quantity", "TotalAmount"),
    (
        ("000101", "Garden Tools", "Redmond", "FedX", "2", "$40.00"),
        ("000102", "Lawn Chairs", "Seattle", "UPS", "1", "$120.00"),
        ("000103", "Garden Tools", "Redmond", "UPS", "5", "$100.00"),
        ("000104", "Lawn Chairs", "Redmond", "FedX", "3", "$360.00"),
        ("000105", "Bird Feeders", "Spokane", "UPS", "1", "$15.00"),
    ),
    Rows(1, 5),
)
COUNTIES = TableData(
    "data/county-population.csv",
    "county-population",
    ("fips", "name", "total_population"),
    (("31001", "Adams County, NE", "31364"), ("31003", "Antelope County, NE", "6685"), ("31109", "Lancaster County, NE", "286425")),
    Rows(1, 3),
)
MACRO = TableData(
    "finance/us-macro-quarterly.csv",
    "us-macro-quarterly",
    ("year", "quarter", "unemp", "tbilrate"),
    (("2009", "1", "8.1", "0.22"), ("2009", "2", "9.2", "0.18"), ("2009", "3", "9.6", "0.12"), ("2008", "4", "6.9", "0.3")),
    Section(),
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TableStore]:
    s = TableStore(tmp_path / "tables.sqlite")
    for table in (ORDERS, COUNTIES, MACRO):
        s.replace_source("/drive", table.source, [table])
    yield s
    s.close()


def _info(store: TableStore, source: str) -> TableInfo:
    (info,) = store.list_tables({source})
    return info


def _answer(store: TableStore, question: str, source: str) -> str:
    plan = plan_question(question, _info(store, source), store)
    assert plan is not None, question
    outcome = run_plan(plan, store)
    assert outcome is not None
    return outcome.summary


@pytest.mark.parametrize(
    ("word", "way"),
    [("the youngest", "min"), ("most populous", "max"), ("cheapest", "min"), ("strongest", "max"), ("", "")],
)
def test_a_superlative_asks_for_a_maximum_or_a_minimum(word: str, way: str) -> None:
    assert direction(f"Which team is {word}?") == way


def test_the_smallest_value_of_a_column_named_by_its_meaning(store: TableStore) -> None:
    summary = _answer(store, "Which county has the smallest population?", "data/county-population.csv")
    assert "Antelope County" in summary and "6685" in summary.replace(",", "")


def test_counting_rows_with_two_filters(store: TableStore) -> None:
    assert _answer(store, "How many orders shipped by FedX went to Redmond?", "sales/orders.csv").startswith("2 rows")


def test_the_group_with_the_highest_total(store: TableStore) -> None:
    summary = _answer(store, "Which product brought in the most money across all orders?", "sales/orders.csv")
    assert "Lawn Chairs" in summary and "480" in summary


def test_the_value_seen_most_often(store: TableStore) -> None:
    summary = _answer(store, "Which shipping agency handled the most orders?", "sales/orders.csv")
    assert "UPS" in summary and "3 rows" in summary


def test_a_row_named_in_the_question_and_a_partial_cell(store: TableStore) -> None:
    summary = _answer(store, "What is the population of Lancaster County, Nebraska?", "data/county-population.csv")
    assert "286425" in summary


def test_in_which_year_names_the_column_to_report(store: TableStore) -> None:
    summary = _answer(store, "In which year was unemployment highest?", "finance/us-macro-quarterly.csv")
    assert summary.startswith("Highest unemp") and "year: 2009" in summary and "9.6" in summary


def test_filters_that_match_no_row_say_so(store: TableStore) -> None:
    info = _info(store, "finance/us-macro-quarterly.csv")
    plan = plan_question("What was the unemployment rate in the fourth quarter of 2009?", info, store)
    assert plan is not None and {v for _, v in plan.filters} == {4, 2009}
    outcome = run_plan(plan, store)
    assert outcome is not None and outcome.empty and "quarter 4" in outcome.summary


def test_an_aggregate_over_a_table_the_question_does_not_name_is_not_made(store: TableStore) -> None:
    tables = [_info(store, t.source) for t in (ORDERS, COUNTIES)]
    assert best_plan("What was the total on my hotel folio?", tables, store) is None
