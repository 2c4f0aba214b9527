"""Table questions: exact lookups and aggregates computed over the ingested tables, cited by rows.

Similarity search finds the rows that mention a team or a year; "the highest ratio" or "the total
for 2018" needs the whole table. When a question looks like a lookup or an aggregate and the top
hits come from files with tables, this module computes the answer over those tables and returns it
as one extra evidence item (a ``Hit`` whose chunk is the result, located at the rows it used):

- with an LLM, the model is shown the tables' schemas (and a few sample rows, quoted as data) and
  writes ONE SELECT (``prompts/sql_*.md``), run read-only through ``TableStore.run`` with only the
  hits' files readable;
- without one (or when the model's query gives nothing), a small deterministic matcher answers
  "value of <row> in <column>" lookups and "highest/lowest <column or row>" questions when the
  question names the row and the column plainly.

The evidence's source, sheet and rows always come from the table store, never from model text.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from mmrag.ingest.chunk import Chunk, Locator, Modality, Rows, Section
from mmrag.pipeline.answer.extractive import content_words
from mmrag.pipeline.answer.llm import Llm, LlmError, Message, Role
from mmrag.pipeline.answer.table_query import Embed, Plan, best_plan, run_plan
from mmrag.pipeline.answer.types import EXTRACTIVE_NOTE, Answer, Citation, link_for
from mmrag.prompts.loader import new_boundary, quote_data, render
from mmrag.retrieval.store import Hit
from mmrag.retrieval.tables_sql import QueryError, SqlValue, TableInfo, TableStore

log = logging.getLogger(__name__)

NO_SQL = "NO_SQL"  # the reply that means "no listed table answers this" (see sql_system.md)
MAX_TABLES = 6
SAMPLE_ROWS = 3
MAX_RESULT_ROWS = 30
SQL_MAX_TOKENS = 200  # one SELECT is short; the stage passes the configured limit (``llm_sql_max_tokens``)
MAX_SCAN_ROWS = 5000
MIN_MATCH = 0.75
_TABULAR = re.compile(
    r"\b(sum|average|avg|mean|total|max(imum)?|min(imum)?|count|highest|lowest|largest|smallest|biggest|most|"
    r"least|fewest|top|how (many|much)|which|what|\w{3,}est)\b|\d",
    re.IGNORECASE,
)
_HIGH = re.compile(r"\b(highest|largest|biggest|maximum|max|most|top|peak)\b", re.IGNORECASE)
_LOW = re.compile(r"\b(lowest|smallest|minimum|min|least|fewest)\b", re.IGNORECASE)
# a reply cut at its token limit may lack the closing fence
_SQL_FENCE = re.compile(r"```(?:sql|sqlite)?\s*\n?(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class TableFinding:
    """A computed answer from one table: the evidence item to cite, and a one-line summary of it.

    ``empty``: the question's filters matched no row of the table it names, so the table does not hold
    the answer (the summary says which filters).
    """

    hit: Hit
    summary: str
    empty: bool = False
    value: str = ""  # the one value a planned computation found (a cell, a total, the top label), if any
    matched: tuple[str, ...] = ()  # the text cells the question's filters matched ("Douglas County, NE")


def looks_tabular(question: str) -> bool:
    """Whether the question may need a lookup or arithmetic over a table (a cheap, permissive test)."""
    return bool(_TABULAR.search(question))


def candidate_tables(hits: Sequence[Hit], store: TableStore) -> list[TableInfo]:
    """The tables of the files the hits come from, best-ranked file first (at most ``MAX_TABLES``)."""
    order: dict[tuple[str, str], int] = {}
    for rank, hit in enumerate(hits):
        order.setdefault((hit.root, hit.chunk.source), rank)
    found = store.list_tables(sources={source for _, source in order})
    found = [t for t in found if (t.root, t.source) in order]
    found.sort(key=lambda t: order[(t.root, t.source)])
    return found[:MAX_TABLES]


def table_evidence(
    question: str,
    hits: Sequence[Hit],
    store: TableStore,
    llm: Llm | None = None,
    embed: Embed | None = None,
    sql_max_tokens: int = SQL_MAX_TOKENS,
) -> TableFinding | None:
    """The answer to a table question computed over the hits' tables, or None when none applies.

    The question is read into a plan (``table_query``) first; only when none is confident does an LLM,
    if one is configured, write the SELECT; last the plain row-and-column matcher below is tried.
    """
    if not looks_tabular(question):
        return None
    tables = candidate_tables(hits, store)
    if not tables:
        return None
    finding = None
    plan = best_plan(question, tables, store, embed)
    if plan is not None:  # a confident plan needs no model call: the answer then takes one call, not two
        finding = _planned_finding(plan, store, hits)
    if finding is None and llm is not None:
        try:
            finding = _llm_finding(question, tables, store, hits, llm, sql_max_tokens)
        except LlmError as e:
            log.info("no table query: %s", e)
    # the plain row-and-column matcher reads wide tables (years as columns) the plan may not
    return finding or _matched_finding(question, tables, store, hits)


def _planned_finding(plan: Plan, store: TableStore, hits: Sequence[Hit]) -> TableFinding | None:
    outcome = run_plan(plan, store)
    if outcome is None:
        return None
    info = plan.info
    if outcome.empty:
        if plan.op == "count":
            text = f"From table {info.name!r} of {info.source}: 0 rows where " + outcome.summary.split(" where ", 1)[-1]
            return TableFinding(_hit(info, hits, info.first_row, info.first_row, text), text)
        numeric = any(not isinstance(v, str) for _, v in plan.filters)
        if not numeric:
            return None
        return TableFinding(
            _hit(info, hits, info.first_row, info.first_row, outcome.summary), outcome.summary, empty=True
        )
    first, last = (min(outcome.rows), max(outcome.rows)) if outcome.rows else _all_rows(store, info)
    body = "\n".join(outcome.details[:MAX_RESULT_ROWS])
    text = f"From table {info.name!r} of {info.source}: {outcome.summary}" + (f"\n{body}" if body else "")
    matched = tuple(v for _, v in plan.filters if isinstance(v, str))
    return TableFinding(_hit(info, hits, first, last, text), outcome.summary, value=outcome.value, matched=matched)


def with_table_finding(answer: Answer, finding: TableFinding) -> Answer:
    """An extractive answer led by the table's computed finding (it answers what the table was asked),
    the quotes after it; a decline becomes the finding alone."""
    if any(c.hit.chunk.id == finding.hit.chunk.id and c.hit.root == finding.hit.root for c in answer.citations):
        return answer
    same = (finding.hit.root, finding.hit.chunk.source)
    # quotes of the same table are the rows the computation already read: the finding supersedes them
    kept = [] if answer.declined else [c for c in answer.citations if (c.hit.root, c.hit.chunk.source) != same]
    numbers = {c.n: n for n, c in enumerate(kept, start=2)}
    cited = Citation(1, finding.hit, link_for(finding.hit), finding.summary)
    shifted = tuple(Citation(numbers[c.n], c.hit, c.link, c.quote) for c in kept)
    lines = [EXTRACTIVE_NOTE, f"From the table: {finding.summary} [1]"]
    for line in answer.text.split("\n")[1:] if not answer.declined else []:
        marker = re.search(r"\[(\d+)\]$", line)
        if marker and int(marker.group(1)) in numbers:
            lines.append(
                f"- {line.removeprefix('- ')[: marker.start() - len(line)].rstrip()} [{numbers[int(marker.group(1))]}]"
            )
    return Answer("\n".join(lines), (cited, *shifted), declined=False, extractive=answer.extractive)


# --- the LLM writes the query --------------------------------------------------------------------


def _sample(store: TableStore, info: TableInfo) -> list[list[str]]:
    result = store.run(
        f'SELECT _raw FROM "{info.sql_name}" ORDER BY _row', allowed_sources={info.source}, max_rows=SAMPLE_ROWS
    )
    return [[str(c) for c in json.loads(str(row[0]))] for row in result.rows]


def schema_block(tables: Sequence[TableInfo], store: TableStore, boundary: str) -> str:
    """The tables as the SQL writer sees them: names and columns, header texts and samples as data."""
    blocks = []
    for info in tables:
        lines = ["Headers: " + " | ".join(info.headers)]
        lines += ["Row: " + " | ".join(row) for row in _sample(store, info)]
        blocks.append(
            render(
                "sql_table",
                signature=info.signature,
                source=_one_line(info.source),
                place=_one_line(info.locator.cite()),
                row_count=str(info.row_count),
                sample=quote_data("\n".join(lines), boundary),
            ).strip()
        )
    return "\n\n".join(blocks)


def extract_sql(reply: str) -> str | None:
    """The query in a model's reply (a ```sql block, or the bare reply); None for the sentinel."""
    text = reply.strip()
    if not text or text.startswith(NO_SQL):
        return None
    fenced = _SQL_FENCE.search(text)
    sql = (fenced.group(1) if fenced else text).strip().rstrip(";").strip()
    return sql or None


def _llm_finding(
    question: str,
    tables: Sequence[TableInfo],
    store: TableStore,
    hits: Sequence[Hit],
    llm: Llm,
    max_tokens: int = SQL_MAX_TOKENS,
) -> TableFinding | None:
    boundary = new_boundary()
    messages = [
        Message(Role.SYSTEM, render("sql_system", boundary=boundary, no_sql=NO_SQL)),
        Message(
            Role.USER, render("sql_user", schemas=schema_block(tables, store, boundary), question=_one_line(question))
        ),
    ]
    sql = extract_sql(llm.chat(messages, max_tokens=max_tokens))
    if sql is None:
        return None
    lowered = sql.lower()
    used = sorted((t for t in tables if t.sql_name.lower() in lowered), key=lambda t: lowered.index(t.sql_name.lower()))
    if not used:
        log.info("table query names none of the offered tables: %s", sql)
        return None
    try:
        result = store.run(sql, allowed_sources={t.source for t in tables}, max_rows=MAX_RESULT_ROWS)
    except QueryError as e:
        log.info("table query refused or failed (%s): %s", e, sql)
        return None
    if not result.rows:
        return None
    info = used[0]
    first, last = _rows_used(result.columns, result.rows) or _all_rows(store, info)
    shown = [i for i, c in enumerate(result.columns) if c not in ("_raw", "_rows")]
    body = [" | ".join("row" if result.columns[i] == "_row" else result.columns[i] for i in shown)]
    body += [" | ".join(_show(row[i]) for i in shown) for row in result.rows]
    if result.truncated:
        body.append(f"(first {len(result.rows)} rows)")
    text = f"Result of a query over table {info.name!r} of {info.source}:\n{sql}\n" + "\n".join(body)
    summary = "; ".join(" | ".join(_show(row[i]) for i in shown) for row in result.rows[:3])
    return TableFinding(_hit(info, hits, first, last, text), summary)


def _rows_used(columns: Sequence[str], rows: Sequence[Sequence[SqlValue]]) -> tuple[int, int] | None:
    numbers: list[int] = []
    for name in ("_row", "_rows"):
        if name in columns:
            i = columns.index(name)
            for row in rows:
                numbers += [int(p) for p in re.findall(r"\d+", str(row[i]))] if row[i] is not None else []
    return (min(numbers), max(numbers)) if numbers else None


def _all_rows(store: TableStore, info: TableInfo) -> tuple[int, int]:
    found = store.run(f'SELECT min(_row), max(_row) FROM "{info.sql_name}"', allowed_sources={info.source}).rows
    low, high = found[0] if found else (None, None)
    return (int(str(low)), int(str(high))) if low is not None and high is not None else (info.first_row, info.first_row)


# --- the deterministic matcher -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Table:
    info: TableInfo
    rows: tuple[tuple[int, tuple[SqlValue, ...], tuple[str, ...]], ...]  # (_row, stored values, displayed cells)


def _load(store: TableStore, info: TableInfo) -> _Table:
    result = store.run(
        f'SELECT * FROM "{info.sql_name}" ORDER BY _row', allowed_sources={info.source}, max_rows=MAX_SCAN_ROWS
    )
    rows = []
    for row in result.rows:
        raw = [str(c) for c in json.loads(str(row[-1]))]
        raw += [""] * (len(info.columns) - len(raw))
        rows.append((int(str(row[0])), tuple(row[1:-1]), tuple(raw)))
    return _Table(info, tuple(rows))


def _phrase(text: str) -> str:
    return _SPACES.sub(" ", re.sub(r"[^\w.%$/]+", " ", text.casefold())).strip()


Match = tuple[float, int]  # (share of the text the question names, how many words that is)


def _match(text: str, question: str, asked: set[str]) -> Match:
    """How plainly the question names ``text``: the whole phrase, or the share of its words."""
    phrase = _phrase(text)
    if not phrase or (not re.search(r"[^\W\d_]", phrase) and len(phrase) < 4):
        return (0.0, 0)
    words = content_words(text)
    if re.search(r"(?<![\w])" + re.escape(phrase) + r"(?![\w])", _phrase(question)):
        return (1.0, max(1, len(words)))
    if not words:
        return (0.0, 0)
    found = sum(1 for w in words if any(_same_word(w, a) for a in asked))
    return (found / len(words), found)


def _same_word(a: str, b: str) -> bool:
    return a == b or (min(len(a), len(b)) >= 4 and (a.startswith(b) or b.startswith(a)))


def _key_cell(column: int, value: SqlValue) -> bool:
    """Whether a cell can name its row: text anywhere, a number or a year only in the first column."""
    return column == 0 or _number(value) is None


def _number(value: SqlValue) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _headers(table: _Table) -> list[str]:
    """Column headers, each extended by the first data row when that row is a second header row (text
    over columns that otherwise hold numbers), as in sheets with two-level headings."""
    headers = list(table.info.headers)
    if len(table.rows) < 3:
        return headers
    _, first, raw = table.rows[0]
    texts = [c for c in range(1, len(raw)) if raw[c]]
    below = any(_number(row[1][c]) is not None for row in table.rows[1:] for c in texts)
    if texts and below and all(_number(v) is None for v in first):
        for c in texts:
            headers[c] = f"{headers[c]} {raw[c]}"
    return headers


@dataclass(frozen=True, slots=True)
class _Candidate:
    score: Match
    table: _Table
    row: int  # index into table.rows
    column: int  # index into info.columns
    summary: str


def _row_matches(question: str, asked: set[str], table: _Table) -> list[tuple[Match, int]]:
    """For each row, how plainly the question names it (its best cell) and which cell that is."""
    out = []
    for _, values, raw in table.rows:
        cells = [(_match(cell, question, asked), c) for c, cell in enumerate(raw) if cell and _key_cell(c, values[c])]
        out.append(max(cells, default=((0.0, 0), -1)))
    return out


def _lookup(question: str, table: _Table, headers: list[Match], names: list[str]) -> list[_Candidate]:
    """One row named plainly: its value in the one column named plainly, or its extreme across columns."""
    asked = content_words(question)
    rows = _row_matches(question, asked, table)
    best = max((m for m, _ in rows), default=(0.0, 0))
    named = [i for i, (m, _) in enumerate(rows) if m == best]
    if best[0] < MIN_MATCH or len(named) != 1:
        return []
    i = named[0]
    _, values, raw = table.rows[i]
    key = rows[i][1]
    label = raw[key]
    columns = sorted(
        (c for c in range(len(raw)) if c != key and raw[c] and headers[c][0] >= MIN_MATCH),
        key=lambda c: headers[c],
        reverse=True,
    )
    if columns and (len(columns) == 1 or headers[columns[0]] > headers[columns[1]]):
        c = columns[0]
        return [_Candidate(min(best, headers[c]), table, i, c, f"{label} — {names[c]}: {raw[c]}")]
    high, low = bool(_HIGH.search(question)), bool(_LOW.search(question))
    numeric = [(v, c) for c, value in enumerate(values) if c != key and (v := _number(value)) is not None]
    if high == low or columns or len(numeric) < 2:
        return []
    _, c = (max if high else min)(numeric)
    word = "Highest" if high else "Lowest"
    return [_Candidate(best, table, i, c, f"{word} {label}: {raw[c]} in {names[c]}")]


def _extreme(question: str, table: _Table, headers: list[Match], names: list[str]) -> list[_Candidate]:
    """A numeric column named plainly: the row holding its highest or lowest value."""
    high, low = bool(_HIGH.search(question)), bool(_LOW.search(question))
    if high == low:
        return []
    out = []
    for c, match in enumerate(headers):
        numeric = [(v, i) for i, (_, values, _) in enumerate(table.rows) if (v := _number(values[c])) is not None]
        if match[0] < MIN_MATCH or len(numeric) < 2:
            continue
        _, i = (max if high else min)(numeric)
        _, values, raw = table.rows[i]
        label = next((cell for k, cell in enumerate(raw) if k != c and cell and _number(values[k]) is None), "")
        word = "Highest" if high else "Lowest"
        out.append(_Candidate(match, table, i, c, f"{word} {names[c]}: {raw[c]}" + (f" ({label})" if label else "")))
    return out


def _matched_finding(
    question: str, tables: Sequence[TableInfo], store: TableStore, hits: Sequence[Hit]
) -> TableFinding | None:
    asked = content_words(question)
    scored: list[tuple[Match, float, _Candidate]] = []
    for info in tables:
        table = _load(store, info)
        names = _headers(table)
        headers = [_match(h, question, asked) for h in names]
        name_words = content_words(info.name)
        named = sum(1 for w in name_words if w in asked) / max(1, len(name_words))
        found = _lookup(question, table, headers, names) or _extreme(question, table, headers, names)
        scored += [(cand.score, named, cand) for cand in found]
    if not scored:
        return None
    scored.sort(key=lambda s: (s[0], s[1]), reverse=True)
    best = scored[0]
    if len(scored) > 1 and scored[1][:2] == best[:2] and scored[1][2].summary != best[2].summary:
        log.info("table lookup is ambiguous: %s / %s", best[2].summary, scored[1][2].summary)
        return None
    cand = best[2]
    info = cand.table.info
    number, _, raw = cand.table.rows[cand.row]
    pairs = " · ".join(f"{h}: {v}" for h, v in zip(info.headers, raw, strict=False) if v)
    text = f"From table {info.name!r} of {info.source}, row {number}: {pairs}\n{cand.summary}"
    return TableFinding(_hit(info, hits, number, number, text), cand.summary)


# --- shared --------------------------------------------------------------------------------------


def _place(info: TableInfo, hits: Sequence[Hit], first: int, last: int) -> Locator:
    """Where rows first..last are. A table located only as a whole file (a CSV) is cited by rows when
    the file's own chunks are (the hits show it is row-addressable)."""
    place = info.rows_locator(first, last)
    if place == Section() and any(
        h.chunk.source == info.source and h.root == info.root and isinstance(h.chunk.locator, Rows) for h in hits
    ):
        return Rows(first, last, None)
    return place


def _hit(info: TableInfo, hits: Sequence[Hit], first: int, last: int, text: str) -> Hit:
    chunk = Chunk(
        info.source, Modality.TABLE, _place(info, hits, first, last), text, title=f"computed from {info.name}"
    )
    return Hit(chunk, 1.0, root=info.root, signals=(("sql", 1.0),))


def _show(value: SqlValue) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.6g}" if abs(value) < 1e6 else str(value)
    return str(value)


def _one_line(text: str) -> str:
    return " ".join(text.split())
