"""XLSX, CSV and TSV files: every value lands in a chunk cited by the right sheet and data rows."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest

from mmrag.ingest.base import ChunkingConfig, IngestSettings
from mmrag.ingest.chunk import Chunk, Modality, Rows, Section, Sheet, Table
from mmrag.ingest.errors import IngestError
from mmrag.ingest.formats import tables
from mmrag.ingest.formats.tables import ENCRYPTED, TablesIngestor
from mmrag.ingest.text.cellformat import format_cell
from mmrag.ingest.text.numbers import parse_number
from mmrag.ingest.text.tablechunks import table_chunks

DRIVE = Path(__file__).resolve().parents[3].parent / "shared" / "corpus" / "drive"


def _ingest(path: Path, settings: IngestSettings | None = None) -> tuple[list[Chunk], list[Table]]:
    items = list(TablesIngestor(settings or IngestSettings()).ingest(path, path.name))
    return [i for i in items if isinstance(i, Chunk)], [i for i in items if isinstance(i, Table)]


def _row_chunk(chunks: list[Chunk], phrase: str) -> Chunk:
    found = [c for c in chunks if phrase in c.text and isinstance(c.locator, Rows) and not _is_summary(c)]
    assert len(found) == 1, f"{phrase!r} in {len(found)} row chunks"
    return found[0]


def _is_summary(chunk: Chunk) -> bool:
    return chunk.text.split("\n", 1)[0].endswith("— table summary")


def _rows(chunk: Chunk) -> Rows:
    assert isinstance(chunk.locator, Rows)
    return chunk.locator


def _set_cached_value(path: Path, sheet_xml: str, cell: str, value: str) -> None:
    """Give a formula cell the cached value Excel stores on save (openpyxl writes formulas without one)."""
    with zipfile.ZipFile(path) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    xml = parts[sheet_xml].decode()
    xml, count = re.subn(rf'(<c r="{cell}"[^>]*>)<f>([^<]*)</f>(<v\s*/>|<v></v>)?', rf"\1<f>\2</f><v>{value}</v>", xml)
    assert count == 1, xml
    parts[sheet_xml] = xml.encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)


@pytest.fixture
def workbook(tmp_path: Path) -> Path:
    import openpyxl

    wb = openpyxl.Workbook()
    sales = wb.active
    assert sales is not None
    sales.title = "Sales"
    sales.append(["Region", "Units", None, "Price"])  # a blank header cell
    sales.append(["North", 1186, "ok", 29.960000000000001])
    sales.append(["South", 2500, "late", 12.5])
    sales.append(["East", 310, "ok", 7.25])
    sales["A5"] = "Total"
    sales["B5"] = "=SUM(B2:B4)"
    for row in range(2, 6):
        sales[f"B{row}"].number_format = "#,##0"
    sales["F30"] = None  # formatting far away must not make empty rows or columns
    sales["F30"].number_format = "0.00"
    staff = wb.create_sheet("Staff 2024")
    staff["A1"] = "Head count by team"  # a title row above the header
    staff.append(["Team", "People", "Share"])
    staff.append(["Platform", 12, 0.4])
    staff.append(["Data", 18, 0.6])
    staff["C3"].number_format = "0.0%"
    staff["C4"].number_format = "0.0%"
    wb.create_sheet("Empty")
    path = tmp_path / "sales.xlsx"
    wb.save(path)
    _set_cached_value(path, "xl/worksheets/sheet1.xml", "B5", "3996")
    return path


def test_every_sheet_is_read_with_values_as_displayed(workbook: Path) -> None:
    _, found = _ingest(workbook)
    assert [t.name for t in found] == ["Sales", "Staff 2024"]  # the empty sheet gives nothing
    sales, staff = found
    assert sales.header == ("Region", "Units", "column 3", "Price")
    assert sales.rows[0] == ("North", "1,186", "ok", "29.96")
    assert sales.rows[3] == ("Total", "3,996", "", "")  # the formula's value, in the cell's format
    assert sales.locator == Sheet("Sales") and sales.first_row == 1
    assert staff.header == ("Team", "People", "Share")
    assert staff.rows == (("Platform", "12", "40.0%"), ("Data", "18", "60.0%"))


def test_a_value_is_cited_by_sheet_and_data_row(workbook: Path) -> None:
    chunks, _ = _ingest(workbook)
    south = _row_chunk(chunks, "South")
    assert _rows(south).sheet == "Sales" and _rows(south).first <= 2 <= _rows(south).last
    platform = _row_chunk(chunks, "Platform")
    assert _rows(platform) == Rows(1, 2, "Staff 2024")  # the title row is not a data row
    assert platform.text.startswith("sales — sheet Staff 2024 — rows 1-2\nHead count by team\n")
    assert dict(platform.extra)["sheet_rows"] == "3-4"  # what Excel shows in its row margin
    assert platform.modality is Modality.TABLE and platform.title == "sales"


def test_each_table_has_a_summary_with_ranges_and_values(workbook: Path) -> None:
    chunks, _ = _ingest(workbook)
    summary = [c for c in chunks if c.locator == Sheet("Sales")]
    assert len(summary) == 1
    text = summary[0].text
    assert "Columns (4): Region, Units, column 3, Price" in text
    assert "Data rows: 4" in text
    assert "- Units: numbers from 310 to 3,996" in text
    assert "- column 3: 2 distinct values: ok (×2), late" in text


def test_header_is_repeated_in_every_chunk_of_a_long_csv(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    lines = ["order_id,customer,amount"] + [f"A-{n:03d},customer {n},{n * 10}.50" for n in range(1, 101)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    chunks, found = _ingest(path)
    rows = [c for c in chunks if not _is_summary(c)]
    assert len(rows) >= 3
    for chunk in rows:
        assert "| order_id | customer | amount |" in chunk.text
        assert len(chunk.text) <= ChunkingConfig().max_chars
        locator = _rows(chunk)
        assert locator.sheet is None
        assert chunk.text.startswith(f"orders — rows {locator.first}-{locator.last}\n")
        assert f"| A-{locator.first:03d} |" in chunk.text and f"| A-{locator.last:03d} |" in chunk.text
    assert _rows(_row_chunk(chunks, "| A-057 |")).first <= 57 <= _rows(_row_chunk(chunks, "| A-057 |")).last
    covered = sorted(n for c in rows for n in range(_rows(c).first, _rows(c).last + 1))
    assert covered == list(range(1, 101))  # every row in exactly one chunk
    (table,) = found
    assert table.name == "orders" and table.locator == Section() and table.rows[56][0] == "A-057"
    summary = [c for c in chunks if _is_summary(c)]
    assert len(summary) == 1 and summary[0].locator == Section()
    assert "- amount: numbers from 10.50 to 1000.50 (100 values)" in summary[0].text


def test_row_n_of_a_csv_is_line_n_plus_1(tmp_path: Path) -> None:
    path = tmp_path / "weather.csv"
    path.write_text("date,rain\n2012/01/01,0.0\n2012/01/02,10.9\n\n2012/01/04,20.3\n", encoding="utf-8")
    chunks, (table,) = _ingest(path)
    assert table.rows[3] == ("2012/01/04", "20.3")  # the blank line keeps its number
    assert _rows(_row_chunk(chunks, "2012/01/04")) == Rows(1, 4)
    small = ChunkingConfig(target_chars=60, max_chars=200, overlap_chars=0)
    chunks = list(table_chunks("w.csv", "w", table.header, table.rows, lambda a, b: Rows(a, b), small))
    assert [c.locator for c in chunks if "20.3" in c.text] == [Rows(4, 4)]


def test_tsv_and_windows_encodings(tmp_path: Path) -> None:
    tsv = tmp_path / "staff.tsv"
    tsv.write_bytes("name\tcity\nJosé\tMálaga, Spain\n".encode("cp1252"))
    _, (table,) = _ingest(tsv)
    assert table.header == ("name", "city") and table.rows == (("José", "Málaga, Spain"),)
    semicolons = tmp_path / "prices.csv"
    semicolons.write_text("\ufeffitem;price\nTea;1,50\nCoffee;2,10\n", encoding="utf-8")
    _, (table,) = _ingest(semicolons)
    assert table.header == ("item", "price") and table.rows[1] == ("Coffee", "2,10")


def test_a_numeric_first_row_is_data(tmp_path: Path) -> None:
    path = tmp_path / "readings.csv"
    path.write_text("1,20.5\n2,21.0\n", encoding="utf-8")
    _, (table,) = _ingest(path)
    assert table.header == ("column 1", "column 2") and table.rows[0] == ("1", "20.5")


def test_a_huge_csv_holds_its_first_rows_with_a_note_and_reads_the_rest_again_for_sql(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tables, "MAX_ROWS", 50)
    path = tmp_path / "log.csv"
    path.write_text("n\n" + "\n".join(str(i) for i in range(1000)), encoding="utf-8")
    chunks, (table,) = _ingest(path)
    assert len(table.rows) == 50 and table.rows[-1] == ("49",)
    assert any("Note: only the first 50 data rows are held" in c.text for c in chunks)
    assert table.more_rows is not None
    rest = list(table.more_rows())
    assert len(rest) == 950 and rest[0] == ("50",) and rest[-1] == ("999",)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 500 + "EncryptedPackage".encode("utf-16-le"), ENCRYPTED),
        (
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 500,
            "legacy Excel format (.xls), not XLSX; save it as .xlsx to index it",
        ),
        (b"PK\x03\x04 truncated", "damaged workbook: not a readable ZIP container (File is not a zip file)"),
    ],
)
def test_unusable_workbooks_are_reported(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "q3.xlsx"
    path.write_bytes(content)
    with pytest.raises(IngestError) as error:
        _ingest(path)
    assert error.value.reason == reason and error.value.path == str(path)


def test_empty_inputs_are_reported(tmp_path: Path) -> None:
    import openpyxl

    empty_csv = tmp_path / "blank.csv"
    empty_csv.write_text("\n\n", encoding="utf-8")
    with pytest.raises(IngestError, match=r"no data found \(empty table\)"):
        _ingest(empty_csv)
    book = tmp_path / "blank.xlsx"
    openpyxl.Workbook().save(book)
    with pytest.raises(IngestError) as error:
        _ingest(book)
    assert error.value.reason == "no data found (every sheet is empty)"


@pytest.mark.parametrize(
    ("value", "fmt", "shown"),
    [
        (1186, "#,##0", "1,186"),
        (29.960000000000001, "General", "29.96"),
        (0.1 + 0.2, "General", "0.3"),
        (-81, "#,##0\\ ;\\(#,##0\\)", "(81)"),
        (0, '_(* #,##0_);_(* \\(#,##0\\);_(* "—"_);_(@_)', "—"),
        (0.529, "0.0%", "52.9%"),
        (1234.5, '"$"#,##0.00', "$1,234.50"),
        (1500000, '#,##0.0,,"M"', "1.5M"),
    ],
)
def test_numbers_are_shown_as_the_cell_format_says(value: float, fmt: str, shown: str) -> None:
    assert format_cell(value, fmt) == shown


def test_number_parsing_of_displayed_cells() -> None:
    assert [parse_number(t) for t in ("$1,801.5", "(194)", "52.9%", "$(62)", "007", "19-Sep-03", "—")] == [
        1801.5,
        -194,
        52.9,
        -62,
        None,
        None,
        None,
    ]


# --- the shared corpus ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def drive_items() -> dict[str, list[Chunk | Table]]:
    if not DRIVE.is_dir():
        pytest.skip(f"shared corpus not found at {DRIVE}")
    ingestor = TablesIngestor()
    paths = sorted(p for p in DRIVE.rglob("*") if p.suffix.lower() in (".xlsx", ".csv", ".tsv"))
    return {p.relative_to(DRIVE).as_posix(): list(ingestor.ingest(p, p.relative_to(DRIVE).as_posix())) for p in paths}


def _chunks(items: list[Chunk | Table]) -> list[Chunk]:
    return [i for i in items if isinstance(i, Chunk)]


def test_every_corpus_table_ingests(drive_items: dict[str, list[Chunk | Table]]) -> None:
    assert len(drive_items) >= 12
    for source, items in drive_items.items():
        chunks = _chunks(items)
        assert chunks and any(isinstance(i, Table) for i in items), source
        assert len({c.id for c in chunks}) == len(chunks), f"duplicate chunk ids in {source}"
        assert all(len(c.text) <= ChunkingConfig().max_chars for c in chunks), source


@pytest.mark.parametrize(
    ("source", "phrase", "row", "sheet"),
    [
        ("data/msft.csv", "| 19-Sep-03 | 29.76 | 29.97 | 29.52 | 29.96 |", 1, None),
        ("data/seattle-weather.csv", "| 2012/01/04 | 20.3 |", 4, None),  # the file writes dates with "/"
        (
            "data/annual-reports/american_tower_other_operating_expense.csv",
            "| Total Other operating expenses |",
            4,
            None,
        ),
        ("data/annual-reports/torm_loan_to_value.csv", "| Loan-to-value (LTV) ratio | 46.0% |", 9, None),
        ("data/annual-reports/umc_appropriation_of_earnings.csv", "| Cash dividends |", 4, None),
        ("data/annual-reports/bce_q4_2019_operating_revenues.csv", "| Bell Wireless | 2,493 |", 1, None),
        ("data/stanley-cups.xlsx", "| Maple Leafs | TOR | 13 |", 3, "Stanley Cups"),
        ("data/xlsx_03_chartsheet.xlsx", "| 2022 | 170 | 110 | 280 |", 4, "Duck Observations"),
        ("data/2023-half-year-analyses-by-segment.xlsx", "| Zone NA | 12,553 |", 2, "OS-Rev.and results 30 06 2023"),
    ],
)
def test_corpus_rows_are_cited_where_they_are(
    drive_items: dict[str, list[Chunk | Table]], source: str, phrase: str, row: int, sheet: str | None
) -> None:
    chunk = _row_chunk(_chunks(drive_items[source]), phrase)
    locator = _rows(chunk)
    assert locator.sheet == sheet and locator.first <= row <= locator.last
    (table,) = [t for t in drive_items[source] if isinstance(t, Table) and (t.name == sheet or sheet is None)]
    assert phrase.strip("| ").split(" | ")[0] == table.rows[row - 1][0]


def test_corpus_goodwill_rows_ten_to_fourteen(drive_items: dict[str, list[Chunk | Table]]) -> None:
    (table,) = [t for t in drive_items["data/annual-reports/goodwill_by_segment_2019.csv"] if isinstance(t, Table)]
    assert [r[0] for r in table.rows[9:14]] == [
        "Internet of Things Group",
        "Mobileye",
        "Programmable Solutions Group",
        "Client Computing Group",
        "All other",
    ]
    assert table.rows[9][3] == "480"


def test_corpus_workbooks_give_every_sheet(drive_items: dict[str, list[Chunk | Table]]) -> None:
    names = {s: [t.name for t in items if isinstance(t, Table)] for s, items in drive_items.items()}
    assert names["data/stanley-cups.xlsx"] == ["Stanley Cups", "Stanley Cups Since 67"]
    assert names["data/xlsx_03_chartsheet.xlsx"] == ["Duck Observations"]  # the chart's sheet has no cells
    assert len(names["data/2023-half-year-analyses-by-segment.xlsx"]) == 5
    index = _chunks(drive_items["data/vodafone.xlsx"])
    assert any(
        "Mobile ARPU" in c.text and "13" in c.text and _rows(c).sheet == "Index"
        for c in index
        if isinstance(c.locator, Rows)
    )


def test_a_sheet_with_a_title_row_and_two_tables_side_by_side(tmp_path: Path) -> None:
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Summary"
    sheet.append(["Regional sales, first half (in thousands)"])  # a title row above both tables
    sheet.append([])
    sheet.append(["Region", "Units", "Revenue", None, "Manager", "Office"])  # the right table is shorter
    sheet.append(["North", 120, 480, None, "Ana Ruiz", "Leeds"])
    sheet.append(["South", 95, 410, None, "Ben Cho", "Bristol"])
    sheet.append(["East", 60, 300])
    path = tmp_path / "sales.xlsx"
    workbook.save(path)
    items = list(TablesIngestor().ingest(path, "sales.xlsx"))
    tables = [i for i in items if isinstance(i, Table)]
    assert [t.header for t in tables] == [("Region", "Units", "Revenue"), ("Manager", "Office")]
    assert tables[0].rows[2] == ("East", "60", "300") and tables[1].rows == (("Ana Ruiz", "Leeds"), ("Ben Cho", "Bristol"))
    chunks = [i for i in items if isinstance(i, Chunk) and i.locator == Rows(1, 3, "Summary")]
    assert any("Regional sales, first half" in c.text and "Manager" not in c.text.split("|", 1)[0] for c in chunks)


def test_a_cell_holding_only_a_currency_sign_is_text_not_a_crash(tmp_path: Path) -> None:
    import openpyxl

    assert [parse_number(t) for t in ("$", "€", " £ ", "$ ", "(€)", "-", "%")] == [None] * 7
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["Item", "Currency", "Amount"])
    sheet.append(["Consulting", "$", 1200])
    sheet.append(["Travel", "€", 310.5])
    path = tmp_path / "costs.xlsx"
    workbook.save(path)
    (table,) = [i for i in TablesIngestor().ingest(path, "costs.xlsx") if isinstance(i, Table)]
    assert table.rows[0][:2] == ("Consulting", "$") and table.rows[1][1] == "€"


def test_a_csv_title_line_and_footnotes_are_not_header_or_data(tmp_path: Path) -> None:
    path = tmp_path / "beneficiaries.csv"
    path.write_text(
        "Beneficiaries by state during FY 2010\n"
        "State,Students,Total\n"
        "KANSAS,7744,7744\n"
        "NEBRASKA,5001,5416\n"
        "Note: a student may be counted in more than one state.\n"
    )
    (table,) = [i for i in TablesIngestor().ingest(path, "beneficiaries.csv") if isinstance(i, Table)]
    assert table.header == ("State", "Students", "Total")
    assert table.rows == (("KANSAS", "7744", "7744"), ("NEBRASKA", "5001", "5416"))
    summary = next(c for c in TablesIngestor().ingest(path, "beneficiaries.csv") if isinstance(c, Chunk))
    assert "Beneficiaries by state during FY 2010" in summary.text


def test_a_spacer_column_inside_one_table_does_not_split_it(tmp_path: Path) -> None:
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["Zone", "Sales", None, "Profit"])
    sheet.append(["North", 120, None, 30])
    sheet.append(["South", 95, None, 20])
    path = tmp_path / "spaced.xlsx"
    workbook.save(path)
    tables = [i for i in TablesIngestor().ingest(path, "spaced.xlsx") if isinstance(i, Table)]
    assert len(tables) == 1 and tables[0].header[:2] == ("Zone", "Sales") and tables[0].header[-1] == "Profit"
