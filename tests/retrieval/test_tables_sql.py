"""The SQL table store: exact answers over ingested tables, cited by row, and nothing but reading."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mmrag.ingest.chunk import Rows, Sheet, Slide, Table
from mmrag.retrieval.tables_sql import QueryError, TableStore, column_names, sql_value

SALES = Table(
    source="finance/sales.xlsx",
    name="Sales",
    header=("Region", "Units", "Price ($)", "Units", "% Change"),
    rows=(
        ("North", "1,186", "$29.96", "1", "3.6%"),
        ("South", "2,500", "$12.50", "2", "(8.4%)"),
        ("", "", "", "", ""),  # a blank row keeps the numbering of the rows after it
        ("East", "310", "$7.25", "3", "—"),
        ("West", "(40)", "n/a", "4", "1.0%"),
    ),
    locator=Sheet("Sales"),
)
DECK = Table("decks/q3.pptx", "Chart: Revenue", ("category", "2026"), (("Q1", "10"), ("Q2", "20")), Slide(4))


@pytest.fixture
def store(tmp_path: Path) -> TableStore:
    s = TableStore(tmp_path / "index" / "tables.sqlite")
    s.replace_source("drive", SALES.source, [SALES])
    s.replace_source("drive", DECK.source, [DECK])
    return s


def _sales(store: TableStore) -> str:
    (info,) = store.list_tables({SALES.source})
    return info.sql_name


def test_tables_are_listed_with_their_origin_and_columns(store: TableStore) -> None:
    infos = store.list_tables()
    assert [i.source for i in infos] == ["decks/q3.pptx", "finance/sales.xlsx"]
    sales = infos[1]
    assert sales.name == "Sales" and sales.locator == Sheet("Sales") and sales.root == "drive"
    assert sales.columns == ("region", "units", "price", "units_2", "pct_change")
    assert sales.headers == SALES.header
    assert sales.row_count == 4  # the blank row is not stored
    assert sales.signature == f"{sales.sql_name}(_row, region, units, price, units_2, pct_change, _raw)"
    assert sales.rows_locator(2) == Rows(2, 2, "Sales")
    assert infos[0].rows_locator(1, 2) == Slide(4)  # a chart's rows are cited by its slide


def test_sum_avg_count_and_filters_give_exact_answers(store: TableStore) -> None:
    t = _sales(store)
    assert store.query(f"SELECT SUM(units), COUNT(*), COUNT(pct_change) FROM {t}") == [(3956, 4, 3)]
    ((average,),) = store.query(f"SELECT AVG(price) FROM {t}")  # "n/a" is NULL, not 0
    assert average == pytest.approx((29.96 + 12.5 + 7.25) / 3)
    assert store.query(f"SELECT region, _row FROM {t} WHERE units > ? ORDER BY units DESC", (1000,)) == [
        ("South", 2),
        ("North", 1),
    ]
    # Row 4 is East: the blank row 3 kept its number, so the answer cites the right row.
    assert store.query(f"SELECT _row, _raw FROM {t} WHERE region = 'East'") == [
        (4, '["East", "310", "$7.25", "3", "—"]')
    ]
    assert store.query(f"SELECT units FROM {t} WHERE region = 'West'") == [(-40,)]


def test_values_are_stored_as_numbers_when_they_are_numbers() -> None:
    assert [sql_value(v) for v in ("$1,801.5", "(194)", "52.9%", "19-Sep-03", "007", "—", "", "2019 (1)")] == [
        1801.5,
        -194,
        52.9,
        "19-Sep-03",
        "007",
        None,
        None,
        "2019 (1)",
    ]
    assert column_names(["Adj. Close*", "2019 (1)", "", "Order", "Date", "Date"]) == (
        "adj_close",
        "c_2019_1",
        "column_3",
        "order_",
        "date",
        "date_2",
    )


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM {t}",
        "UPDATE {t} SET units = 0",
        "INSERT INTO {t}(_row, _raw) VALUES (9, '[]')",
        "DROP TABLE {t}",
        "CREATE TABLE x(a)",
        "CREATE TEMP TABLE x(a)",
        "ATTACH DATABASE ':memory:' AS other",
        "PRAGMA table_info({t})",
        "SELECT load_extension('evil')",
    ],
)
def test_anything_but_reading_is_rejected(store: TableStore, sql: str) -> None:
    t = _sales(store)
    with pytest.raises(QueryError, match="not allowed"):
        store.query(sql.format(t=t))
    assert store.query(f"SELECT COUNT(*) FROM {t}") == [(4,)]


def test_only_one_statement_runs(store: TableStore) -> None:
    t = _sales(store)
    with pytest.raises(QueryError, match="only one SELECT statement"):
        store.query(f"SELECT 1; DELETE FROM {t}")
    assert store.query(f"SELECT COUNT(*) FROM {t}") == [(4,)]


def test_a_runaway_query_is_stopped(tmp_path: Path) -> None:
    store = TableStore(tmp_path / "t.sqlite", timeout_s=0.2)
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT COUNT(*) FROM c"
    with pytest.raises(QueryError, match=r"longer than 0\.2 s"):
        store.query(endless)
    with pytest.raises(QueryError, match="too big"):
        store.query("SELECT length(zeroblob(1000000000))")


def test_allowed_sources_limit_what_can_be_read(store: TableStore) -> None:
    t = _sales(store)
    (deck,) = store.list_tables({DECK.source})
    assert store.query(f"SELECT COUNT(*) FROM {t}", allowed_sources={SALES.source}) == [(4,)]
    for sql in (f"SELECT * FROM {deck.sql_name}", "SELECT * FROM tables", "SELECT name FROM sqlite_master"):
        with pytest.raises(QueryError, match="not allowed"):
            store.query(sql, allowed_sources={SALES.source})
    with pytest.raises(QueryError, match="not allowed"):
        store.query(f"SELECT COUNT(*) FROM {t}", allowed_sources=set())


def test_results_are_capped(store: TableStore) -> None:
    result = store.run(f"SELECT region FROM {_sales(store)} ORDER BY _row", max_rows=2)
    assert result.columns == ("region",) and result.rows == (("North",), ("South",)) and result.truncated


def test_replacing_and_deleting_a_source(store: TableStore, tmp_path: Path) -> None:
    old = _sales(store)
    smaller = Table(SALES.source, "Sales", ("Region", "Units"), (("North", "5"),), Sheet("Sales"))
    other = Table(SALES.source, "Costs", ("Item", "Cost"), (("Rent", "100"),), Sheet("Costs"))
    store.replace_source("drive", SALES.source, [smaller, other])
    infos = store.list_tables({SALES.source})
    assert [i.name for i in infos] == ["Sales", "Costs"]
    assert store.query(f"SELECT SUM(units) FROM {infos[0].sql_name}") == [(5,)]
    assert infos[0].sql_name == old  # the same table of the same file keeps its name
    store.delete_source("drive", SALES.source)
    assert store.list_tables({SALES.source}) == []
    with pytest.raises(QueryError, match="no such table"):
        store.query(f"SELECT * FROM {old}")
    store.close()
    reopened = TableStore(tmp_path / "index" / "tables.sqlite")
    assert [i.source for i in reopened.list_tables()] == [DECK.source]


def test_a_failed_load_leaves_the_previous_tables(store: TableStore) -> None:
    class Broken(Exception):
        pass

    class Exploding(list[Table]):
        def __iter__(self) -> Iterator[Table]:
            yield SALES  # loaded, then the source fails half way: nothing of it may remain
            raise Broken

    with pytest.raises(Broken):
        store.replace_source("drive", SALES.source, Exploding())
    assert store.query(f"SELECT COUNT(*) FROM {_sales(store)}") == [(4,)]


def test_principals_limit_which_tables_can_be_listed_and_read(tmp_path: Path) -> None:
    store = TableStore(tmp_path / "tables.sqlite")
    salaries = Table("hr/pay.csv", "pay", ("name", "salary"), (("Ann", "91000"), ("Bo", "88000")), Rows(1, 2))
    menu = Table("menu.csv", "menu", ("day", "dish"), (("Mon", "Soup"),), Rows(1, 1))
    store.replace_source("/drive", "hr/pay.csv", [salaries], principals=("group:hr",))
    store.replace_source("/drive", "menu.csv", [menu], principals=("PUBLIC",))
    [pay] = store.list_tables({"hr/pay.csv"})
    everyone = store.readable_by(frozenset({"PUBLIC", "user:bob"}))
    assert [t.source for t in everyone.list_tables()] == ["menu.csv"]
    with pytest.raises(QueryError, match="not allowed"):
        everyone.run(f'SELECT max(salary) FROM "{pay.sql_name}"')
    hr = store.readable_by(frozenset({"group:hr"}))
    assert hr.query(f'SELECT max(salary) FROM "{pay.sql_name}"') == [(91000,)]
    assert store.readable_by(frozenset()).list_tables() == []  # nobody reads anything
    assert store.readable_by(None) is store  # permissions off: the store itself
    with pytest.raises(QueryError, match="read-only"):
        hr.replace_source("/drive", "menu.csv", [menu])
    store.close()


def test_a_store_made_before_permissions_opens_and_its_tables_are_unreadable_with_them_on(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "tables.sqlite"
    TableStore(path).close()
    old = sqlite3.connect(path)
    old.execute("DROP TABLE tables")
    old.execute(  # the catalog as it was, without principals_json
        "CREATE TABLE tables (sql_name TEXT PRIMARY KEY, root TEXT NOT NULL, source TEXT NOT NULL, name TEXT NOT NULL,"
        " locator_json TEXT NOT NULL, columns_json TEXT NOT NULL, first_row INTEGER NOT NULL,"
        " row_count INTEGER NOT NULL, position INTEGER NOT NULL)"
    )
    old.commit()
    old.close()
    store = TableStore(path)
    store.replace_source("/drive", SALES.source, [SALES])  # written with no principals known
    assert [t.source for t in store.list_tables()] == [SALES.source]
    assert store.readable_by(frozenset({"PUBLIC"})).list_tables() == []  # fail closed
    store.close()
