"""What python-pptx does not read for us: chart data, SmartArt text, and tables as plain cells.

Charts are read from the chart part's XML (``c:chartSpace``), not through python-pptx's chart
objects, because those refuse whole plot families (3-D bar charts, for one) while the cached data
of every chart type sits in the same ``c:ser`` elements: a series name, categories (``c:cat`` or a
scatter's ``c:xVal``) and values (``c:val`` or ``c:yVal``), each with its number format. That is
what lets "how many saltwater ducks were seen in 2020" find 95 in the slide's text.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mmrag.ingest.text.cellformat import format_number
from mmrag.ingest.text.tablechunks import clean_cell, header_names, looks_numeric

_C = "{http://schemas.openxmlformats.org/drawingml/2006/chart}"
_A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"
_R = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_DGM = "{http://schemas.openxmlformats.org/drawingml/2006/diagram}"
DIAGRAM_URI = "http://schemas.openxmlformats.org/drawingml/2006/diagram"
MAX_CHART_POINTS = 2000


@dataclass(frozen=True, slots=True)
class CellTable:
    """A table as text cells: a header and data rows (all rows as wide as the header)."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, slots=True)
class ChartData:
    title: str
    kind: str  # "bar", "line", "pie", ... from the plot element
    table: CellTable  # category column, then one column per series


def _text_of(element: Any) -> str:
    return clean_cell("".join(t.text or "" for t in element.iter(f"{_A}t")))


def _points(container: Any) -> dict[int, str]:
    """idx -> displayed value of a string or number cache/literal (the first level of a multi-level one)."""
    if container is None:
        return {}
    for tag in ("strCache", "numCache", "strLit", "numLit", "multiLvlStrCache"):
        cache = next(container.iter(f"{_C}{tag}"), None)
        if cache is None:
            continue
        if tag == "multiLvlStrCache":
            cache = cache.find(f"{_C}lvl")
            if cache is None:
                return {}
        fmt_element = cache.find(f"{_C}formatCode")
        fmt = (fmt_element.text or "General") if fmt_element is not None else "General"
        found: dict[int, str] = {}
        for pt in cache.iter(f"{_C}pt"):
            value = pt.find(f"{_C}v")
            if value is None or value.text is None:
                continue
            text = value.text.strip()
            point_fmt = pt.get("formatCode") or fmt
            if tag.startswith("num"):
                with contextlib.suppress(ValueError):  # a cached value that is not a number stays as written
                    text = format_number(float(text), point_fmt)
            found[int(pt.get("idx", len(found)))] = text
            if len(found) >= MAX_CHART_POINTS:
                break
        return found
    return {}


def chart_data(chart_space: Any) -> ChartData | None:
    """A chart's title and its data as a table (categories down, series across), or ``None`` if empty."""
    chart = chart_space.find(f"{_C}chart")
    if chart is None:
        return None
    plot_area = chart.find(f"{_C}plotArea")
    if plot_area is None:
        return None
    series: list[tuple[str, dict[int, str], dict[int, str]]] = []
    kinds: list[str] = []
    category_label = "category"
    for plot in plot_area:
        tag = str(plot.tag)
        if not tag.startswith(_C) or not tag.endswith("Chart"):
            continue
        kinds.append(tag[len(_C) : -len("Chart")])
        for ser in plot.findall(f"{_C}ser"):
            name_element = ser.find(f"{_C}tx")
            name = ""
            if name_element is not None:
                values = _points(name_element)
                name = (
                    values[min(values)]
                    if values
                    else clean_cell("".join(v.text or "" for v in name_element.iter(f"{_C}v")))
                )
            categories = _points(ser.find(f"{_C}cat")) or _points(ser.find(f"{_C}xVal"))
            if ser.find(f"{_C}xVal") is not None:
                category_label = "x"
            values = _points(ser.find(f"{_C}val")) or _points(ser.find(f"{_C}yVal"))
            series.append((name or f"series {len(series) + 1}", categories, values))
    if not series:
        return None
    axis = plot_area.find(f"{_C}catAx")
    axis = plot_area.find(f"{_C}dateAx") if axis is None else axis
    axis_title = axis.find(f"{_C}title") if axis is not None else None
    if axis_title is not None and _text_of(axis_title):
        category_label = _text_of(axis_title)
    title = _chart_title(chart, series)
    categories = next((c for _, c, _ in series if c), {})
    indexes = sorted(set(categories) | {i for _, _, values in series for i in values})[:MAX_CHART_POINTS]
    header = header_names([category_label, *(name for name, _, _ in series)])
    rows = tuple((categories.get(i, str(i + 1)), *(values.get(i, "") for _, _, values in series)) for i in indexes)
    return ChartData(title, "/".join(dict.fromkeys(kinds)), CellTable(header, rows))


def _chart_title(chart: Any, series: list[tuple[str, dict[int, str], dict[int, str]]]) -> str:
    title = chart.find(f"{_C}title")
    if title is not None:
        text = _text_of(title)
        if not text:
            text = clean_cell(" ".join(v.text or "" for v in title.iter(f"{_C}v")))
        if text:
            return text
    deleted = chart.find(f"{_C}autoTitleDeleted")
    if len(series) == 1 and title is not None and (deleted is None or deleted.get("val") not in ("1", "true")):
        return series[0][0]  # PowerPoint shows a one-series chart's name as its title
    return ""


def cell_table(rows: Iterable[Iterable[str]]) -> CellTable | None:
    """A table from rows of cell texts: the first row is the header unless it is all numbers."""
    grid = [[clean_cell(c) for c in row] for row in rows]
    grid = [row for row in grid if any(row)]
    if not grid:
        return None
    width = max(len(row) for row in grid)
    padded = [tuple(row + [""] * (width - len(row))) for row in grid]
    if looks_numeric(padded[0]) or len(padded) == 1:
        return CellTable(header_names([""] * width), tuple(padded))
    return CellTable(header_names(padded[0], width), tuple(padded[1:]))


def pptx_table(graphic_frame: Any) -> CellTable | None:
    """A PowerPoint table's cells (a merged cell's text in its first cell, the spanned ones empty)."""
    rows = []
    for row in graphic_frame.table.rows:
        rows.append(["" if cell.is_spanned else cell.text.replace("\v", " ") for cell in row.cells])
    return cell_table(rows)


def diagram_text(graphic_frame: Any) -> list[str]:
    """The text of a SmartArt diagram, point by point, from its data part (python-pptx has no API)."""
    data = graphic_frame._element.find(f".//{_DGM}relIds")
    if data is None:
        return []
    rel_id = data.get(f"{_R}dm")
    if not rel_id:
        return []
    from lxml import etree

    part = graphic_frame.part.related_part(rel_id)
    root = etree.fromstring(part.blob)
    lines = []
    for pt in root.iter(f"{_DGM}pt"):
        if pt.get("type") not in (None, "node"):
            continue  # transitions and the document node carry no text of their own
        text = _text_of(pt)
        if text:
            lines.append(text)
    return lines


def graphic_kind(graphic_frame: Any) -> str:
    """``table``, ``chart``, ``diagram`` or ``other`` for a graphic frame."""
    if getattr(graphic_frame, "has_table", False):
        return "table"
    if getattr(graphic_frame, "has_chart", False):
        return "chart"
    data = graphic_frame._element.find(f".//{_A}graphicData")
    if data is not None and data.get("uri") == DIAGRAM_URI:
        return "diagram"
    return "other"
