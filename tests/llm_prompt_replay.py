"""One-off prompt comparison: mmrag's answer stage against a running OpenAI-compatible server, timed per token.

Not a test. For each question it runs mmrag's own retrieval, table step and ``generative_answer`` (the
evidence numbering, the prompts of the checkout on PYTHONPATH, the citation check), but talks to the
server through a small streaming client instead of LangChain, so it can record the time to the first
token, the server's token counts and timings, and send ``max_tokens``. The table step's SQL replies are
cached on disk (keyed by the prompt without its random boundary), so comparing answer prompts does not
pay for the SQL call again.

    PYTHONPATH=/path/to/variant /work/main/.venv/bin/python tests/llm_prompt_replay.py \
        --base-url http://127.0.0.1:PORT/v1 --label new --out /tmp/runs/new.jsonl [--max-tokens 400]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from mmrag.pipeline.answer.llm import Message, TokenSink
from mmrag.pipeline.answer.stage import answer_from_hits
from mmrag.pipeline.api import ANSWER_HITS, search_index
from mmrag.pipeline.app import open_app
from mmrag.pipeline.config import load_config

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parents[1] / "shared" / "corpus"
_BOUNDARY = re.compile(r"[0-9a-f]{12}")


class Client:
    """An ``Llm`` that streams from an OpenAI-compatible server and keeps each call's numbers."""

    endpoint = "replay"
    vision = False

    def __init__(self, base_url: str, max_tokens: int | None, sql_cache: Path, timeout_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.max_tokens = max_tokens
        self.sql_cache = sql_cache
        self.timeout_s = timeout_s
        self.calls: list[dict[str, Any]] = []

    def chat(self, messages: Sequence[Message], stream: TokenSink | None = None) -> str:
        body: dict[str, Any] = {
            "model": "anything",
            "messages": [{"role": m.role.value, "content": m.text} for m in messages],
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        is_sql = "SQLite query" in messages[0].text
        key = hashlib.sha256(_BOUNDARY.sub("B", json.dumps(body["messages"])).encode()).hexdigest()[:16]
        cached = self.sql_cache / f"{key}.txt"
        if is_sql and cached.is_file():
            reply = cached.read_text(encoding="utf-8")
            self.calls.append({"kind": "sql", "cached": True, "reply": reply})
            return reply
        if self.max_tokens and not is_sql:
            body["max_tokens"] = self.max_tokens
        t0 = time.monotonic()
        first = None
        pieces: list[str] = []
        timings: dict[str, Any] = {}
        with httpx.stream("POST", self.base_url + "/chat/completions", json=body, timeout=self.timeout_s) as r:
            r.raise_for_status()
            for line in r.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                timings = chunk.get("timings", timings)
                for choice in chunk.get("choices", []):
                    text = (choice.get("delta") or {}).get("content") or ""
                    if text:
                        first = first if first is not None else time.monotonic() - t0
                        pieces.append(text)
                        if stream is not None:
                            stream(text)
        reply = "".join(pieces)
        self.calls.append(
            {
                "kind": "sql" if is_sql else "answer",
                "first_token_s": round(first or 0.0, 2),
                "total_s": round(time.monotonic() - t0, 2),
                "prompt_n": timings.get("prompt_n"),
                "prompt_ms": timings.get("prompt_ms"),
                "cache_n": timings.get("cache_n"),
                "gen_n": timings.get("predicted_n"),
                "gen_ms": timings.get("predicted_ms"),
                "reply": reply,
            }
        )
        if is_sql:
            self.sql_cache.mkdir(parents=True, exist_ok=True)
            cached.write_text(reply, encoding="utf-8")
        return reply


def contains(answer: str, expected: list[str]) -> bool:
    low = answer.lower()
    flat = re.sub(r"(?<=\d),(?=\d)", "", low)
    return all(e.lower() in low or re.sub(r"(?<=\d),(?=\d)", "", e.lower()) in flat for e in expected)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--label", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--index", type=Path, default=Path("/tmp/llm-idx"))
    ap.add_argument("--questions", type=Path, default=CORPUS / "dev-questions.jsonl")
    ap.add_argument("--extra", type=Path, help="more questions (same format), e.g. near-miss probes")
    ap.add_argument("--only", default="")
    ap.add_argument("--max-tokens", type=int, default=0)
    ap.add_argument("--sql-cache", type=Path, default=Path("/tmp/runs/sql-cache"))
    ap.add_argument("--timeout-s", type=float, default=900)
    args = ap.parse_args()

    import llm_measure  # the same fixed mix

    questions = [json.loads(x) for x in args.questions.read_text(encoding="utf-8").splitlines() if x.strip()]
    chosen = [q for q in questions if q["id"] in args.only.split(",")] if args.only else llm_measure.pick(questions)
    if args.extra:
        chosen += [json.loads(x) for x in args.extra.read_text(encoding="utf-8").splitlines() if x.strip()]
    cfg = load_config(index_dir=args.index)
    index = open_app(cfg, create=False)
    try:
        with args.out.open("w", encoding="utf-8") as out:
            for q in chosen:
                client = Client(args.base_url, args.max_tokens or None, args.sql_cache, args.timeout_s)
                hits = search_index(index, q["question"], ANSWER_HITS)
                t0 = time.monotonic()
                answer = answer_from_hits(
                    q["question"],
                    hits,
                    tables=index.tables,
                    vectorizer=index.vectorizer,
                    llm=client,  # type: ignore[arg-type]
                    strict=cfg.models.llm_strict_citations,
                )
                row = {
                    "label": args.label,
                    "id": q["id"],
                    "kind": q["kind"],
                    "answer": answer.text,
                    "declined": answer.declined,
                    "ok": answer.declined if q["kind"] == "none" else contains(answer.text, q["answer"]),
                    "citations": [c.n for c in answer.citations],
                    "flagged": list(answer.flagged),
                    "removed_citations": list(answer.removed_citations),
                    "answer_s": round(time.monotonic() - t0, 2),
                    "load1": round(os.getloadavg()[0], 2),
                    "calls": client.calls,
                }
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                out.flush()
                a = [c for c in client.calls if c["kind"] == "answer"]
                info = (
                    f"first {a[0]['first_token_s']}s total {a[0]['total_s']}s p{a[0]['prompt_n']} g{a[0]['gen_n']}"
                    if a
                    else "no call"
                )
                print(f"{q['id']} ok={row['ok']} declined={answer.declined} {info} {answer.text[:90]!r}", flush=True)
    finally:
        index.close()
    return 0


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(HERE))
    raise SystemExit(main())
