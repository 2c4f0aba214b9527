"""``mmrag eval``: retrieval and answer quality on a question set with known evidence.

Question format (one JSON object per line)::

    {"id": "q001", "question": "...", "evidence": [{"file": "finance/q3.pdf", "page": 3}],
     "answer": ["2.5"], "kind": "pdf"}

A retrieved chunk matches an evidence entry when its source ends with the entry's ``file`` and its
locator overlaps the entry's (same page/slide/sheet; rows or time spans overlap; an entry without a
locator matches any chunk of the file). Matching functions are pure and unit-tested.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mmrag.ingest.chunk import Wanted, locator_from_json
from mmrag.ingest.errors import MmragError
from mmrag.retrieval.store import Hit

LOCATOR_KEYS = ("page", "slide", "sheet", "rows", "start", "end")


class QuestionFileError(MmragError):
    """A question file that cannot be read; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Question:
    id: str
    question: str
    evidence: tuple[Mapping[str, object], ...]
    answer: tuple[str, ...]
    kind: str


def load_questions(path: Path) -> list[Question]:
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            out.append(
                Question(
                    id=str(data["id"]),
                    question=str(data["question"]),
                    evidence=tuple(data.get("evidence", [])),
                    answer=tuple(str(a) for a in data.get("answer", [])),
                    kind=str(data.get("kind", "")),
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise QuestionFileError(f"{path}:{number}: not a question object ({e})") from e
    return out


def matches(source: str, locator: Mapping[str, object], entry: Mapping[str, object]) -> bool:
    """Whether a hit (source + locator JSON) matches one evidence entry (``Locator.overlaps``)."""
    file = str(entry.get("file", ""))
    if not file or not (source == file or source.endswith("/" + file)):
        return False
    return locator_from_json(dict(locator)).overlaps(Wanted.from_json(entry))


def first_match_rank(hits: Sequence[Mapping[str, object]], evidence: Iterable[Mapping[str, object]]) -> int | None:
    """1-based rank of the first hit matching any evidence entry, or None."""
    entries = list(evidence)
    for rank, hit in enumerate(hits, start=1):
        locator = hit.get("locator")
        loc = locator if isinstance(locator, Mapping) else {}
        if any(matches(str(hit.get("source", "")), loc, e) for e in entries):
            return rank
    return None


def _normalise(text: str) -> str:
    return text.lower().replace(",", "").replace("\u00a0", " ")


def answer_contains(answer: str, expected: Sequence[str]) -> bool:
    """All expected strings appear (case-insensitive; thousands separators optional)."""
    low = answer.lower()
    return all(e.lower() in low or _normalise(e) in _normalise(answer) for e in expected)


@dataclass
class Tally:
    questions: int = 0
    hit1: int = 0
    hit5: int = 0
    rr: float = 0.0
    answered: int = 0
    correct: int = 0
    none_questions: int = 0
    declined: int = 0
    extractive: Tally | None = None  # with an LLM configured: the extractive answers' figures beside

    def score(self, q: Question, answer: Mapping[str, object]) -> bool | None:
        """Count one answer: whether it contains the expected strings (None for an unanswerable question)."""
        declined = bool(answer.get("declined"))
        if not q.evidence:
            self.none_questions += 1
            self.declined += declined
            return None
        if not q.answer:
            return None
        ok = not declined and answer_contains(str(answer.get("answer", "")), q.answer)
        self.answered += 1
        self.correct += ok
        return ok

    def add(self, rank: int | None) -> None:
        self.questions += 1
        if rank is not None:
            self.hit1 += rank == 1
            self.hit5 += rank <= 5
            self.rr += 1.0 / rank if rank <= 10 else 0.0

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"questions": self.questions}
        if self.questions:
            out |= {
                "hit@1": round(self.hit1 / self.questions, 3),
                "hit@5": round(self.hit5 / self.questions, 3),
                "mrr@10": round(self.rr / self.questions, 3),
            }
        if self.answered:
            out["answer_contains"] = round(self.correct / self.answered, 3)
        if self.none_questions:
            out["none_questions"] = self.none_questions
            out["declined"] = round(self.declined / self.none_questions, 3)
        if self.extractive is not None:
            out["extractive"] = {k: v for k, v in self.extractive.to_json().items() if k != "questions"}
        return out


@dataclass
class EvalReport:
    overall: Tally = field(default_factory=Tally)
    by_kind: dict[str, Tally] = field(default_factory=dict)
    questions: list[dict[str, object]] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "overall": self.overall.to_json(),
            "by_kind": {k: t.to_json() for k, t in sorted(self.by_kind.items())},
            "questions": self.questions,
        }


def record(
    report: EvalReport,
    q: Question,
    hits: Sequence[Hit],
    answer: Mapping[str, object] | None,
    extractive: Mapping[str, object] | None = None,
) -> None:
    """Score one question's hits (and answer, if given) into the report; ``extractive`` is the extractive
    answer scored beside a generated one."""
    hit_json = [h.to_json() for h in hits]
    tally = report.by_kind.setdefault(q.kind or "unknown", Tally())
    entry: dict[str, object] = {"id": q.id, "kind": q.kind, "question": q.question, "hits": hit_json}
    if q.evidence:
        rank = first_match_rank(hit_json, q.evidence)
        entry["rank"] = rank
        for t in (report.overall, tally):
            t.add(rank)
    if answer is not None:
        entry |= {k: answer[k] for k in ("answer", "citations", "declined") if k in answer}
        for t in (report.overall, tally):
            ok = t.score(q, answer)
        if ok is not None:
            entry["answer_ok"] = ok
    if extractive is not None:
        beside: dict[str, object] = {k: extractive[k] for k in ("answer", "declined") if k in extractive}
        for t in (report.overall, tally):
            if t.extractive is None:
                t.extractive = Tally()
            ok = t.extractive.score(q, extractive)
        if ok is not None:
            beside["answer_ok"] = ok
        entry["extractive"] = beside
    report.questions.append(entry)
