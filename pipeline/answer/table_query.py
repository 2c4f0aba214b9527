"""Table questions in plain words, answered in SQL without an LLM.

"Which county has the smallest population?", "How many orders shipped by FedX went to Redmond?",
"Which title brought in the most money across all orders?", "What was the unemployment rate in the
third quarter of 2009?": the question is read into a small plan over one table, the plan becomes one
SELECT run read-only in the table store, and the result is cited by the rows it used.

- **Columns** are matched by their header words (split at ``_``, case and punctuation; stemmed) and,
  when an embedder is given, by meaning ("populous" ~ ``total_population``, "money" ~ ``TotalAmount``).
- **Filters** are the table's own cell values that the question names ("FedX", "Redmond", "2009"),
  and "ordinal + column" phrases ("the third quarter" on a ``quarter`` column).
- **The operation**: a superlative asks for a maximum or a minimum ("most", "highest", "youngest",
  any "-est"); "how many" counts rows, unless it names a numeric column ("how many units"), which is
  then summed; "total", "altogether" sum; "average" averages; "most often" counts per value;
  "which X ... most Y ... across all" groups by X; a question naming one row and one column looks the
  value up; "which ... " with filters lists the matching rows.

A plan must be confident (a column or a filter named plainly) or none is made; filters that match no
row are reported as such ("no row has year 2009 and quarter 4"), which answers an unanswerable
question with a decline instead of a neighbouring row.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mmrag.retrieval.query import analyse
from mmrag.retrieval.tables_sql import QueryError, SqlValue, TableInfo, TableStore
from mmrag.retrieval.terms import stem, terms

Embed = Callable[[Sequence[str]], npt.NDArray[np.float32]]

MAX_DISTINCT = 2000  # distinct values read per text column to find the question's filter values
MAX_LISTED = 25
MIN_COLUMN = 0.5  # a column is named when its match reaches this
MIN_CONFIDENCE = 0.5  # below it, the question names too little of a table to compute anything from it

_HIGH_WORDS = ["most", "highest", "largest", "biggest", "greatest", "maximum", "max", "top", "peak", "best", "strongest", "heaviest", "longest", "tallest", "oldest", "latest", "newest", "priciest", "richest", "busiest", "widest", "fastest", "deepest", "hottest", "wettest", "more", "higher", "larger", "bigger"]
_LOW_WORDS = ["least", "lowest", "smallest", "fewest", "minimum", "min", "bottom", "worst", "weakest", "lightest", "shortest", "youngest", "earliest", "cheapest", "poorest", "quietest", "slowest", "coldest", "driest", "less", "lower", "smaller", "fewer"]
_HIGH_PHRASES = ("most expensive", "most populous", "most often", "most frequent", "most common")
_LOW_PHRASES = ("least expensive", "least populous", "least often", "least common")
_OFTEN = re.compile(r"\b(?:most|least) (?:often|frequent(?:ly)?|common(?:ly)?)\b|\bshows? up (?:the )?most\b", re.I)
_COUNT = re.compile(r"\bhow many\b|\bnumber of\b|\bcount\b", re.IGNORECASE)
_SUM = re.compile(r"\b(?:total|sum|altogether|combined|in all|overall)\b", re.IGNORECASE)
_AVG = re.compile(r"\b(?:average|mean|avg)\b", re.IGNORECASE)
_ACROSS = re.compile(r"\b(?:across|over|in) all\b|\bin total\b|\boverall\b|\bcombined\b", re.IGNORECASE)
_WHICH = re.compile(r"\b(?:which|what)\s+([a-z][\w-]*(?:\s+[a-z][\w-]*)?)", re.IGNORECASE)
_ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
    "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "1st": 1, "2nd": 2, "3rd": 3, "4th": 4,
}  # fmt: skip
_WORD = re.compile(r"[A-Za-z]+|\d+(?:\.\d+)?")
_LISTED = re.compile(r"^\s*(?:list|name (?:all|every|the))\b|\b(?:which|what)\s+(?:[a-z]+\s+)?[a-z]+s\b(?!')", re.I)
_ABBREVIATIONS = {
    name: name[:3]
    for name in ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "january", "february", "march", "april", "june", "july", "august", "september", "october", "november", "december"]
} | {"thursday": "thur", "september": "sept", "tuesday": "tues"}
_TOTALS = "('total', 'grand total', 'totals', 'sum', 'all', 'overall', 'subtotal')"
_GENERIC = terms("table file sheet workbook csv spreadsheet data record entry row value number amount the our")


def direction(question: str) -> str:
    """``max``, ``min`` or "" for a question without a superlative."""
    low = question.lower()
    if any(p in low for p in _LOW_PHRASES):
        return "min"
    if any(p in low for p in _HIGH_PHRASES):
        return "max"
    words = re.findall(r"[a-z]+", low)
    if any(w in _LOW_WORDS for w in words):
        return "min"
    if any(w in _HIGH_WORDS for w in words):
        return "max"
    if any(len(w) > 5 and w.endswith("est") and w not in ("interest", "request", "harvest", "forest", "test") for w in words):
        return "max"
    return ""


def header_words(header: str) -> set[str]:
    """A header's words, stemmed: ``total_population`` and ``TotalAmount`` both give their two words."""
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", header).replace("_", " ")
    words = {stem(w) for w in re.findall(r"[A-Za-z]+", spaced) if len(w) > 1}
    # periods name columns too: "Q4 2019", "FY 2018", "2017"
    return words | {w.lower() for w in re.findall(r"\b(?:[QH][1-4]|(?:1[5-9]|20)\d\d)\b", header)}


@dataclass(frozen=True, slots=True)
class Column:
    index: int
    sql: str
    header: str
    numeric: bool
    match: float  # how plainly the question names it (0..1+)


@dataclass(frozen=True, slots=True)
class Plan:
    """One SELECT over one table, and what the question asked of it."""

    info: TableInfo
    op: str  # lookup, max, min, count, sum, avg, list, group_max, group_min, mode
    target: Column | None
    label: Column | None
    filters: tuple[tuple[Column, SqlValue], ...]
    confidence: float


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the plan found: a one-line summary, the rows it used, and the row values to quote."""

    summary: str
    rows: tuple[int, ...]
    details: tuple[str, ...]
    empty: bool = False  # the filters matched no row: the table does not hold what was asked
    value: str = ""  # the one value computed (a cell, a total, the top label), when there is one


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_PERIODS = {str(y) for y in range(1500, 2100)} | {
    stem(w)
    for w in ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "quarter", "q1", "q2", "q3", "q4", "h1", "h2", "fy", "year", "month", "week", "half", "annual", "ytd"]
}
# What people call a measure, and the words its column is usually headed with.
_MEASURES = {
    "money": "amount total revenue sales price cost",
    "revenu": "amount total revenue sales",
    "spent": "amount total cost price",
    "spend": "amount total cost price",
    "earn": "amount total revenue income salary",
    "expens": "cost price amount",
    "cost": "cost price amount",
    "paid": "amount total price paid",
    "peopl": "population count total",
    "popul": "population",
    "big": "size total amount",
    "old": "age",
    "young": "age",
}


def _columns(question: str, info: TableInfo, store: TableStore, embed: Embed | None) -> list[Column]:
    asked = terms(question) - _GENERIC
    for word in list(asked):
        for key, related in _MEASURES.items():
            if word.startswith(key):
                asked |= {stem(w) for w in related.split()}
    kinds = store.run(
        "SELECT " + ", ".join(f"typeof({_quote(c)})" for c in info.columns) + f" FROM {_quote(info.sql_name)} LIMIT 200",
        max_rows=200,
    ).rows
    similar = [0.0] * len(info.columns)
    if embed is not None and info.headers:
        vectors = embed([question, *info.headers])
        similar = [float(v) for v in np.asarray(vectors[1:] @ vectors[0]).tolist()]
    out = []
    for i, (sql, header) in enumerate(zip(info.columns, info.headers, strict=True)):
        values = [row[i] for row in kinds if row[i] != "null"]
        numeric = bool(values) and sum(v in ("integer", "real") for v in values) >= 0.8 * len(values)
        words = header_words(header) - _GENERIC
        # a period ("January–June 2023") says when, not what is measured: it counts half
        lexical = math.fsum((0.5 if w in _PERIODS else 1.0) for w in words if _named(w, asked)) / len(words) if words else 0.0
        out.append(Column(i, sql, header, numeric, lexical + max(0.0, similar[i] - 0.25)))
    return out


def _named(word: str, asked: set[str]) -> bool:
    """A header word the question uses, whole or abbreviated ("unemp" for "unemployment")."""
    return word in asked or (len(word) >= 4 and any(a.startswith(word) or word.startswith(a) for a in asked if len(a) >= 4))


def _filters(question: str, info: TableInfo, columns: Sequence[Column], store: TableStore) -> list[tuple[Column, SqlValue]]:
    """Cell values the question names, per column: whole words of a text value, a year, an ordinal.
    A day or month may be named in full where the table abbreviates it ("Saturdays" for "Sat")."""
    words = [w.lower() for w in _WORD.findall(question)]
    folded = " " + " ".join(words) + " " + " ".join(_ABBREVIATIONS[w.removesuffix("s")] for w in words if w.removesuffix("s") in _ABBREVIATIONS) + " "
    found: list[tuple[Column, SqlValue]] = []
    years = set(analyse(question).years)
    table = _quote(info.sql_name)
    for column in columns:
        if column.numeric:
            named = header_words(column.header)
            for word, number in _ORDINALS.items():
                if any(re.search(rf"\b{word}\s+{re.escape(w)}", question, re.IGNORECASE) for w in named if len(w) > 2):
                    found.append((column, number))
            if years and ("year" in column.header.lower() or column.header.strip().lower() in ("yr", "fy")):
                found += [(column, int(y)) for y in years]
            continue
        values = store.run(
            f"SELECT DISTINCT {_quote(column.sql)} FROM {table} WHERE {_quote(column.sql)} IS NOT NULL",
            max_rows=MAX_DISTINCT,
        ).rows
        best: list[str] = []
        for (value,) in values:
            text = str(value).strip()
            words = [w.lower() for w in _WORD.findall(text)]
            if not words or len(text) < 2 or (len(words) == 1 and len(words[0]) < 3 and not words[0].isdigit()):
                continue
            if f" {' '.join(words)} " in folded or _alternatives_named(text, folded):
                best.append(text)
            elif len(words) >= 2:  # "Lancaster County, NE" named as "Lancaster County, Nebraska"
                core = [w for w in words if len(w) > 2]
                if len(core) >= 2 and f" {' '.join(core)} " in folded:
                    best.append(text)
        best.sort(key=len, reverse=True)  # "New York City" over "York"
        kept: list[str] = []
        for text in best:
            if not any(text.lower() in k.lower() for k in kept):
                kept.append(text)
        if kept and len(kept) <= 3:
            found += [(column, text) for text in kept]
    return found


def _alternatives_named(text: str, folded: str) -> bool:
    """A cell of alternatives that share their last word, named in short: "APPLICANT NAME / ENTITY NAME"
    as "applicant/entity name"."""
    parts = [[w.lower() for w in _WORD.findall(p)] for p in text.split("/")]
    if len(parts) < 2 or any(len(p) < 2 for p in parts) or len({p[-1] for p in parts}) != 1:
        return False
    short = [w for p in parts for w in p[:-1]] + [parts[0][-1]]
    return f" {' '.join(short)} " in folded


def _weight(value: SqlValue, question: str) -> float:
    """How much a filter value says: a number, a name or several words a lot; one plain lower-case word
    of the question ("date", "total") little, since a table may hold it by chance."""
    if not isinstance(value, str):
        return 0.5
    words = _WORD.findall(value)
    if len(words) >= 2:
        return 0.5
    plain = re.search(rf"(?<![A-Za-z]){re.escape(value.lower())}(?![A-Za-z])", question)
    return 0.2 if plain else 0.5


def plan_question(question: str, info: TableInfo, store: TableStore, embed: Embed | None = None) -> Plan | None:
    """The plan a table question asks of ``info``, or None when the question names nothing in it."""
    if not info.columns:
        return None
    columns = _columns(question, info, store, embed)
    filters = _filters(question, info, columns, store)
    filtered = {c.index for c, _ in filters}
    asked_label = _asked_column(question, [c for c in columns if c.index not in filtered], embed)
    numeric = sorted(
        (c for c in columns if c.numeric and c.index not in filtered and c is not asked_label), key=lambda c: -c.match
    )
    texts = sorted((c for c in columns if not c.numeric and c.index not in filtered), key=lambda c: -c.match)
    target = numeric[0] if numeric and numeric[0].match >= MIN_COLUMN else None
    label = asked_label or _label(question, texts, columns, embed)
    way = direction(question)
    named_table = _table_named(question, info)
    if _OFTEN.search(question) and label is not None:
        op = "mode" if way != "min" else "rare"
    elif way and target is None and label is not None and _rows_counted(question):
        op = "mode" if way == "max" else "rare"  # "which carrier handled the most orders": rows per carrier
    elif way and target is not None:
        grouped = label is not None and _ACROSS.search(question) and not filters
        op = ("group_" + way) if grouped else way
    elif _COUNT.search(question):
        counted = target is not None and _counts_column(question, target)
        op = ("lookup" if filters else "sum") if counted else "count"  # "how many cups have the Leafs won": a value
    elif _AVG.search(question) and target is not None:
        op = "avg"
    elif _SUM.search(question) and target is not None and not _one_row_asked(filters):
        op = "sum"
    elif target is not None and filters:
        op = "lookup"
    elif filters and label is not None and _LISTED.search(question):
        op = "list"
    else:
        return None
    if op in ("count", "list") and not filters:
        return None  # counting or listing every row is not what a plain question means
    if not filters and not named_table and op not in ("max", "min"):
        return None  # an aggregate over a whole table the question does not name answers nothing asked
    confidence = (
        (target.match if target else 0.0)
        + math.fsum(_weight(v, question) for _, v in filters)
        + (0.3 if way else 0.0)
        + 0.5 * named_table
    )
    if confidence < MIN_CONFIDENCE:
        return None
    return Plan(info, op, target, label, tuple(filters), confidence)


def _table_named(question: str, info: TableInfo) -> float:
    """How much of the table's or its file's name the question uses ("the 1033 transfers", "tips data")."""
    name = re.sub(r"\.\w+$", "", info.source.rsplit("/", 1)[-1]) + " " + info.name
    words = {stem(w.lower()) for w in re.findall(r"[A-Za-z]{3,}|\d{3,}", name)} - _GENERIC
    asked = terms(question) | set(re.findall(r"\d{3,}", question))
    return len(words & asked) / len(words) if words else 0.0


_ROWS_NOUN = re.compile(r"\b(?:most|least|fewest|highest number of|largest number of)\s+(?:[a-z]+\s+)?([a-z]+s)\b", re.I)


def _rows_counted(question: str) -> bool:
    """"the most book orders", "the fewest complaints": rows counted, not a column's value."""
    match = _ROWS_NOUN.search(question)
    return match is not None and match.group(1).lower() not in _NOT_NOUNS


_NOT_NOUNS = frozenset({"across", "was", "has", "is", "its", "this", "does", "always", "perhaps", "as", "us", "plus"})


def _asked_column(question: str, columns: Sequence[Column], embed: Embed | None) -> Column | None:
    """The column named by "which/what/in which <noun>" ("in which year", "which county"), numeric or not."""
    match = re.search(r"\b(?:which|what)\s+([a-z][\w-]*)", question, re.IGNORECASE)
    if not match:
        return None
    wanted = stem(match.group(1).lower())
    named = [c for c in columns if wanted in header_words(c.header)]
    return named[0] if len(named) == 1 else None


def _one_row_asked(filters: Sequence[tuple[Column, SqlValue]]) -> bool:
    return len(filters) >= 2


def _counts_column(question: str, target: Column) -> bool:
    """"How many units ..." counts a column's values; "how many orders ..." counts rows."""
    match = re.search(r"\bhow many\s+([a-z][\w-]*)", question, re.IGNORECASE)
    return match is not None and stem(match.group(1).lower()) in header_words(target.header)


def _label(question: str, texts: Sequence[Column], columns: Sequence[Column], embed: Embed | None) -> Column | None:
    """The column whose values the question asks for ("which county", "what title"), or the row's name."""
    match = _WHICH.search(question)
    if match:
        wanted = {stem(w.lower()) for w in match.group(1).split()}
        named = [c for c in texts if header_words(c.header) & wanted]
        if named:
            return named[0]
        if embed is not None and texts:  # "which book title" ~ Product: by meaning
            vectors = embed([match.group(1), *(c.header for c in texts)])
            similar = np.asarray(vectors[1:] @ vectors[0]).tolist()
            best = max(range(len(texts)), key=lambda i: similar[i])
            if similar[best] >= 0.3:
                return texts[best]
    if texts and texts[0].match >= MIN_COLUMN:
        return texts[0]
    return texts[0] if texts else next((c for c in columns if not c.numeric), None)


def _where(plan: Plan) -> tuple[str, list[SqlValue]]:
    parts, args = [], []
    for column, value in plan.filters:
        if isinstance(value, str):
            parts.append(f"lower(trim({_quote(column.sql)})) = lower(?)")
        else:
            parts.append(f"{_quote(column.sql)} = ?")
        args.append(value)
    return (" WHERE " + " AND ".join(parts)) if parts else "", args


def _show(value: SqlValue) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if value.is_integer():
            return f"{int(value):,}"
        return f"{value:,.2f}" if abs(value) >= 100 else f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10000 else str(value)
    return str(value)


def _filters_text(plan: Plan) -> str:
    return " and ".join(f"{c.header} {_show(v)}" for c, v in plan.filters)


def run_plan(plan: Plan, store: TableStore) -> Outcome | None:
    """Run the plan's SELECT read-only; None when it cannot run."""
    table = _quote(plan.info.sql_name)
    where, args = _where(plan)
    try:
        return _run(plan, store, table, where, args)
    except QueryError:
        return None


def _cell(plan: Plan, raw: str) -> str:
    """The target cell as the source displays it ("754.7", "$1,801.5"), not as stored."""
    import json

    cells = json.loads(raw)
    index = plan.target.index if plan.target else 0
    return str(cells[index]) if index < len(cells) else ""


def _row_text(plan: Plan, raw: str) -> str:
    import json

    cells = json.loads(raw)
    return " · ".join(f"{h}: {v}" for h, v in zip(plan.info.headers, cells, strict=False) if str(v).strip())


def _run(plan: Plan, store: TableStore, table: str, where: str, args: list[SqlValue]) -> Outcome | None:
    target = _quote(plan.target.sql) if plan.target else ""
    label = _quote(plan.label.sql) if plan.label else ""
    if plan.op in ("max", "min", "lookup", "list"):
        order = f" ORDER BY {target} {'DESC' if plan.op == 'max' else 'ASC'}" if plan.op in ("max", "min") else " ORDER BY _row"
        not_null = (" AND " if where else " WHERE ") + f"{target} IS NOT NULL" if target and plan.op != "list" else ""
        if plan.op in ("max", "min") and label:  # a total row sums the others: never the highest of them
            not_null += f" AND lower(trim(coalesce({label}, ''))) NOT IN {_TOTALS}"
        limit = 1 if plan.op in ("max", "min") else MAX_LISTED
        rows = store.run(f"SELECT _row, _raw FROM {table}{where}{not_null}{order} LIMIT {limit}", args).rows
        if not rows:
            return _empty(plan)
        numbers = tuple(int(str(r[0])) for r in rows)
        details = tuple(_row_text(plan, str(r[1])) for r in rows)
        if plan.op in ("max", "min"):
            word = "Highest" if plan.op == "max" else "Lowest"
            value = _cell(plan, str(rows[0][1]))
            scope = f" (where {_filters_text(plan)})" if plan.filters else ""
            summary = f"{word} {plan.target.header if plan.target else ''}{scope}: {value} — {details[0]}"
            return Outcome(summary, numbers, details, value=value)
        elif plan.op == "lookup" and plan.target is not None:
            value = _cell(plan, str(rows[0][1]))
            summary = f"{plan.target.header} where {_filters_text(plan)}: {value} — {details[0]}"
            if len(rows) > 1:
                summary += f" (first of {len(rows)} matching rows)"
            return Outcome(summary, numbers, details, value=value)
        else:
            names = _distinct(plan, store, table, where, args) or [d.split(" · ")[0] for d in details]
            summary = f"{len(names)} {plan.label.header if plan.label else 'row'}(s) where {_filters_text(plan)}: " + "; ".join(names[:MAX_LISTED])
        return Outcome(summary, numbers, details)
    if plan.op == "count":
        rows = store.run(f"SELECT _row, _raw FROM {table}{where} ORDER BY _row", args, max_rows=100_000).rows
        numbers = tuple(int(str(r[0])) for r in rows)
        if not numbers:
            return _empty(plan)
        if len(numbers) == 1:  # "how many students in Kansas": the one row holds the number, it is not "1"
            row = _row_text(plan, str(rows[0][1]))
            return Outcome(f"The row where {_filters_text(plan)}: {row}", numbers, (row,))
        return Outcome(f"{len(numbers):,} rows where {_filters_text(plan)}", numbers, ())
    if plan.op in ("sum", "avg") and plan.target is not None:
        fn = "sum" if plan.op == "sum" else "avg"
        found = store.run(f"SELECT {fn}({target}), count({target}) FROM {table}{where}", args).rows
        rows = store.run(f"SELECT _row FROM {table}{where} ORDER BY _row", args, max_rows=100_000).rows
        if not found or found[0][1] in (0, None):
            return _empty(plan)
        scope = f" where {_filters_text(plan)}" if plan.filters else ""
        numbers = tuple(int(str(r[0])) for r in rows)
        if len(numbers) == 1:  # one row: its value, not an arithmetic over one number
            one = store.run(f"SELECT _raw FROM {table} WHERE _row = ?", [numbers[0]]).rows
            details = (_row_text(plan, str(one[0][0])),) if one else ()
            value = _show(found[0][0])
            shown = f" — {details[0]}" if details else ""  # the row, as a lookup shows it: "which book, and its total"
            return Outcome(f"{plan.target.header}{scope}: {value}{shown}", numbers, details, value=value)
        word = "Total" if plan.op == "sum" else "Average"
        summary = f"{word} {plan.target.header}{scope}: {_show(found[0][0])} (over {_show(found[0][1])} rows)"
        return Outcome(summary, numbers, (), value=_show(found[0][0]))
    if plan.op in ("group_max", "group_min", "mode", "rare") and plan.label is not None:
        measure = f"sum({target})" if plan.op.startswith("group") else "count(*)"
        desc = plan.op in ("group_max", "mode")
        found = store.run(
            f"SELECT {label}, {measure} AS m, group_concat(_row) FROM {table}{where} GROUP BY {label} "
            f"HAVING {label} IS NOT NULL AND lower(trim({label})) NOT IN {_TOTALS} "
            f"ORDER BY m {'DESC' if desc else 'ASC'} LIMIT 2",
            args,
        ).rows
        if not found:
            return _empty(plan)
        name, amount, rows_text = _show(found[0][0]), found[0][1], found[0][2]
        numbers = tuple(int(x) for x in str(rows_text).split(",") if x.strip().isdigit())
        if plan.op.startswith("group") and plan.target is not None:
            word = "Highest" if desc else "Lowest"
            summary = f"{word} total {plan.target.header} by {plan.label.header}: {name} ({_show(amount)})"
        else:
            word = "Most often" if desc else "Least often"
            summary = f"{word} {plan.label.header}: {name} ({_show(amount)} rows)"
        if len(found) > 1 and found[1][1] == amount:
            summary += f"; tied with {_show(found[1][0])}"
        return Outcome(summary, numbers, (), value=name)
    return None


def _distinct(plan: Plan, store: TableStore, table: str, where: str, args: list[SqlValue]) -> list[str]:
    if plan.label is None:
        return []
    label = _quote(plan.label.sql)
    rows = store.run(f"SELECT DISTINCT {label} FROM {table}{where} ORDER BY {label}", args, max_rows=MAX_LISTED).rows
    return [_show(r[0]) for r in rows if r[0] is not None]


def _empty(plan: Plan) -> Outcome:
    what = f"where {_filters_text(plan)}" if plan.filters else "with a value there"
    return Outcome(f"no row of table {plan.info.name!r} {what}", (), (), empty=True)


def best_plan(
    question: str, tables: Sequence[TableInfo], store: TableStore, embed: Embed | None = None
) -> Plan | None:
    """The most confident plan over the candidate tables (the first table wins a tie)."""
    plans = [p for info in tables if (p := plan_question(question, info, store, embed)) is not None]
    if not plans:
        return None
    return max(enumerate(plans), key=lambda ip: (round(ip[1].confidence, 6), -ip[0]))[1] if plans else None

