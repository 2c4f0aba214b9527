"""The answer stage as a whole: extractive without an LLM, generative with one, a table's computed
finding added either way.

The caller (``api.ask_index``, ``mmrag eval``) searches and passes the hits with the parts the stage
needs, built once by the composition root (``app.open_app``): the table store, the vectorizer (the
extractive answerer embeds candidate sentences) and the LLM, or ``None``.
"""

from __future__ import annotations

from collections.abc import Sequence

from mmrag.pipeline.answer.extractive import extractive_answer, missing_terms
from mmrag.pipeline.answer.generate import generative_answer
from mmrag.pipeline.answer.llm import Llm, TokenSink
from mmrag.pipeline.answer.tables import TableFinding, table_evidence, with_table_finding
from mmrag.pipeline.answer.types import DECLINE_TEXT, Answer
from mmrag.retrieval.query import Question, analyse
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
) -> Answer:
    """Answer ``question`` from ``hits``: generative when ``llm`` is given, extractive otherwise.

    With ``stream``, the answer's text is passed to it (token by token from an LLM, at once when
    extractive): a caller that streams prints only the citations afterwards. ``strict`` drops (not
    only flags) generated sentences their evidence does not support. ``principals`` limits the table
    questions to tables of files they may read (document permissions; ``None``: no limit).
    """
    asked = analyse(question)
    table = table_evidence(question, hits, tables.readable_by(principals), llm, vectorizer.texts)
    if llm is None:
        answer = extractive_answer(question, hits, vectorizer, asked=asked)
        if table is not None:
            answer = _with_table(answer, table, asked, hits)
        if stream is not None:
            stream(answer.text)
        return answer
    evidence = [table.hit, *hits] if table is not None and not table.empty else list(hits)
    return generative_answer(question, evidence, llm, stream=stream, strict=strict)


def _with_table(answer: Answer, table: TableFinding, asked: Question, hits: Sequence[Hit]) -> Answer:
    """The extractive answer with a table's computed finding: the finding leads when it answers; a table
    that holds no row for the question's filters turns the answer into a decline that says so; a finding
    never overrides a decline for key terms nothing mentions, unless the finding itself mentions them."""
    if table.empty:
        return Answer(f"{DECLINE_TEXT} The table holds {table.summary}.", (), declined=True)
    if answer.declined and missing_terms(asked, [table.hit, *hits]):
        return answer
    return with_table_finding(answer, table)
