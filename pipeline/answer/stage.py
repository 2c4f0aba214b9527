"""The answer stage as a whole: extractive without an LLM, generative with one, a table's computed
finding added either way.

The caller (``api.ask_index``, ``mmrag eval``) searches and passes the hits with the parts the stage
needs, built once by the composition root (``app.open_app``): the table store, the vectorizer (the
extractive answerer embeds candidate sentences) and the LLM, or ``None``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from mmrag.ingest.text.numbers import parse_number
from mmrag.pipeline.answer.extractive import (
    attribute_declined,
    declined_for,
    extractive_answer,
    missing_terms,
    relevant,
    unheld_terms,
)
from mmrag.pipeline.answer.generate import MIN_SIMILARITY, generative_answer
from mmrag.pipeline.answer.llm import Llm, LlmUnavailable, TokenSink
from mmrag.pipeline.answer.parts import answer_parts
from mmrag.pipeline.answer.tables import SQL_MAX_TOKENS, TableFinding, table_evidence, with_table_finding
from mmrag.pipeline.answer.types import DECLINE_TEXT, EXTRACTIVE_NOTE, FALLBACK_NOTE, Answer
from mmrag.retrieval.query import Question, analyse, mentions
from mmrag.retrieval.store import Hit
from mmrag.retrieval.tables_sql import TableStore
from mmrag.retrieval.vectorize import Vectorizer


def answer_from_hits(
    question: str,
    hits: Sequence[Hit],
    *,
    tables: TableStore,
    vectorizer: Vectorizer,
    llm: Llm | None,
    strict: bool = False,
    stream: TokenSink | None = None,
    principals: frozenset[str] | None = None,
    sql_max_tokens: int = SQL_MAX_TOKENS,
) -> Answer:
    """Answer ``question`` from ``hits``: generative when ``llm`` is given, extractive otherwise.

    With ``stream``, the answer's text is passed to it (token by token from an LLM, at once when
    extractive): a caller that streams prints only the citations afterwards. ``strict`` drops (not
    only flags) generated sentences their evidence does not support. ``principals`` limits the table
    questions to tables of files they may read (document permissions; ``None``: no limit).

    A model that is down or too slow (``LlmUnavailable``) never ends the answer: the extractive answer
    is given instead, with a note that says why.
    """
    asked = analyse(question)
    readable = tables.readable_by(principals)
    try:
        if llm is not None and missing_terms(asked, hits):  # no model call when nothing names what is asked
            planned = table_evidence(question, hits, readable, None, vectorizer.texts)  # a cell may name it
            missing = missing_terms(asked, [planned.hit, *hits] if planned is not None else hits)
            if missing:
                return _streamed(declined_for(missing, hits), stream)
        unspoken = attribute_declined(question, hits) if llm is not None else None
        if unspoken is not None:  # what is asked of the person or thing, nothing about them speaks of
            return _streamed(unspoken, stream)
        if llm is not None and not relevant(question, hits, MIN_SIMILARITY):
            # what was found decides relevance, not rows a model's own query turns up: no model call
            quoted = _extractive(question, hits, readable, vectorizer, asked, None)
            if quoted.declined:
                return _streamed(quoted, stream)
        table = table_evidence(question, hits, readable, llm, vectorizer.texts, sql_max_tokens)
        if llm is not None:
            evidence = [table.hit, *hits] if table is not None and not table.empty else list(hits)
            answer = generative_answer(question, evidence, llm, stream=stream, strict=strict)
            if answer.declined and relevant(question, evidence, MIN_SIMILARITY):
                note = "The model found no answer in the evidence; the passages that come closest are quoted instead."
                return _quoted_instead(question, hits, readable, vectorizer, asked, table, stream, note)
            if table is not None and table.value and not answer.declined and not states(answer.text, table.value):
                note = (
                    f"The model's answer did not give what the table computation found ({table.value}); "
                    "the computed finding is given instead."
                )
                return _quoted_instead(question, hits, readable, vectorizer, asked, table, stream, note)
            return answer
    except LlmUnavailable as e:
        note = f"{e}. This is the extractive answer instead."
        return _noted(_fallback(_extractive(question, hits, readable, vectorizer, asked, None)), note, stream)
    return _streamed(_extractive(question, hits, readable, vectorizer, asked, table), stream)


def _streamed(answer: Answer, stream: TokenSink | None) -> Answer:
    """``answer``, its text passed to ``stream`` first when there is one."""
    if stream is not None:
        stream(answer.text)
    return answer


def _noted(answer: Answer, note: str, stream: TokenSink | None) -> Answer:
    """``answer`` given after a model's, with ``note`` saying why (streamed after what the model streamed)."""
    if stream is not None:
        stream(f"\n({note})\n{answer.text}")
    return replace(answer, notes=(*answer.notes, note))


def _quoted_instead(
    question: str,
    hits: Sequence[Hit],
    tables: TableStore,
    vectorizer: Vectorizer,
    asked: Question,
    table: TableFinding | None,
    stream: TokenSink | None,
    note: str,
) -> Answer:
    """The extractive answer in place of the model's, with ``note`` saying why, unless it declines too: the
    model found nothing in evidence the checks call relevant (small local models decline too readily), or
    its answer leaves out the value a table computation found (a computed value outranks a re-reading)."""
    quoted = _fallback(_extractive(question, hits, tables, vectorizer, asked, table))
    if quoted.declined:
        return Answer(DECLINE_TEXT, (), declined=True)
    return _noted(quoted, note, stream)


def states(text: str, value: str) -> bool:
    """Whether an answer gives ``value``: a number as any equal number in it ("1,234.50" is 1234.5), a
    name as the same words, case aside."""
    number = parse_number(value)
    if number is not None:
        return any(parse_number(n) == number for n in _NUMBER.findall(text))
    return re.search(rf"(?<!\w){re.escape(value.strip().lower())}(?!\w)", text.lower()) is not None


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def _fallback(answer: Answer) -> Answer:
    """An extractive answer given although an LLM is configured: its heading must not say there is none."""
    return replace(answer, text=answer.text.replace(EXTRACTIVE_NOTE, FALLBACK_NOTE, 1))


def _extractive(
    question: str,
    hits: Sequence[Hit],
    tables: TableStore,
    vectorizer: Vectorizer,
    asked: Question,
    table: TableFinding | None,
) -> Answer:
    two = answer_parts(question, hits, lambda part: extractive_answer(part, hits, vectorizer))
    if two is not None:
        return two
    answer = extractive_answer(question, hits, vectorizer, asked=asked)
    each = _per_year(question, hits, tables, vectorizer, asked) if len(asked.years) >= 2 else []
    for finding in reversed(each):  # the years in the question's order, each from its own file
        answer = _with_table(answer, finding, asked, hits)
    if each:
        return answer
    if table is None:
        table = table_evidence(question, hits, tables, None, vectorizer.texts)
    return _with_table(answer, table, asked, hits) if table is not None else answer


def _per_year(
    question: str, hits: Sequence[Hit], tables: TableStore, vectorizer: Vectorizer, asked: Question
) -> list[TableFinding]:
    """A comparison of years ("between FY2009 and FY2010") asks for each of them: the finding computed over
    the files of each year, when each year has its own (a workbook per year); none otherwise."""
    findings: list[TableFinding] = []
    for year in asked.years:
        own = [h for h in hits if mentions(f"{h.chunk.source}\n{h.chunk.title}", year)]
        found = table_evidence(question, own, tables, None, vectorizer.texts) if own else None
        if found is None or found.empty or any(f.hit.chunk.source == found.hit.chunk.source for f in findings):
            return []
        findings.append(found)
    return findings


def _with_table(answer: Answer, table: TableFinding, asked: Question, hits: Sequence[Hit]) -> Answer:
    """The extractive answer with a table's computed finding: the finding leads when it answers; a table
    that holds no row for the question's filters turns the answer into a decline that says so; a finding
    never overrides a decline for key terms nothing mentions, unless the finding itself mentions them."""
    if table.empty:
        return Answer(f"{DECLINE_TEXT} The table holds {table.summary}.", (), declined=True)
    if answer.declined and missing_terms(asked, [table.hit, *hits]):
        return answer
    if unheld_terms(asked, table.hit):  # computed over rows of another year, place or item than asked
        return answer
    other = other_entity(asked, table)
    if other:
        cell, name = other
        where = f"{table.hit.chunk.source} ({table.hit.chunk.locator.cite()})"
        return Answer(f"{DECLINE_TEXT} The closest match is {cell} in {where}, not {name}.", (), declined=True)
    return with_table_finding(answer, table)


def other_entity(asked: Question, table: TableFinding) -> tuple[str, str] | None:
    """The matched cell and the question's name when the row found is another entity of the same name:
    "Douglas County, Kansas" asked, "Douglas County, NE" found in a file that never mentions Kansas.

    A cell counts when the question gives its first words and then a name the cell does not have, the
    cell goes on with words the question does not have, and the name is nowhere in the finding or its
    file's name ("Lancaster County, Nebraska" is "Lancaster County, NE" of nebraska-counties.csv)."""
    said = f"{table.hit.chunk.text}\n{re.sub(r'[^A-Za-z]+', ' ', table.hit.chunk.source)}"
    question = asked.text
    for cell in table.matched:
        words = re.findall(r"\w+", cell)
        for n in range(len(words) - 1, 0, -1):  # the longest start of the cell the question gives
            lead = r"\W+".join(re.escape(w) for w in words[:n])
            found = re.search(rf"\b{lead}\b\W{{1,3}}(\w+(?:\s+[A-Z]\w+)*)", question, re.IGNORECASE)
            if found is None:
                continue
            after = found.group(1)
            name = next((m for m in asked.names if after.lower().startswith(m.lower())), None)
            rest = words[n:]
            unqualified = not any(mentions(question, w) for w in rest)
            if name and unqualified and not mentions(cell, name) and not mentions(said, name):
                return cell, name
            break
    return None
