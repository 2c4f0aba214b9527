"""One-off measurement of the answer stage against a real llama.cpp server (docs/llm-local.md's tables).

Not a test. Runs ``mmrag ask --json`` for a fixed mix of dev questions, extractive (no model) or with a
GGUF served by ``tests/llm_server.py``, and writes one JSON line per question: the answer, whether it
contains every expected string, whether it declined, wall time, and the server's per-request timings
(prompt tokens and ms, generated tokens and ms) parsed from its log.

    python tests/llm_measure.py --label extractive --out /tmp/runs/extractive.jsonl
    python tests/llm_measure.py --label qwen-new --gguf qwen.gguf --out /tmp/runs/qwen-new.jsonl

The python running this needs xllamacpp (for the server child); ``--mmrag`` is the mmrag command to
call and ``--pythonpath`` what to put on its PYTHONPATH (a checkout whose prompts are measured).

The questions: answerable = kind != "none" with a non-empty answer list, in file order; every 4th of
them from the first (q001, q005, ..., q035), plus the last one (q039, the only video question), plus
every "none" question (q043, q044).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from llm_server import start_server

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def pick(questions: list[dict[str, object]]) -> list[dict[str, object]]:
    answerable = [q for q in questions if q["kind"] != "none" and q["answer"]]
    chosen = answerable[::4]
    if answerable[-1] not in chosen:
        chosen.append(answerable[-1])
    return chosen + [q for q in questions if q["kind"] == "none"]


def contains(answer: str, expected: list[str]) -> bool:
    low = answer.lower()
    flat = re.sub(r"(?<=\d),(?=\d)", "", low)
    return all(e.lower() in low or re.sub(r"(?<=\d),(?=\d)", "", e.lower()) in flat for e in expected)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--label", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--gguf", type=Path)
    ap.add_argument("--index", type=Path, default=Path("/tmp/llm-idx"))
    ap.add_argument("--questions", type=Path, default=CORPUS / "dev-questions.jsonl")
    ap.add_argument("--only", default="", help="comma-separated ids instead of the fixed mix")
    ap.add_argument("--extra", type=Path, help="more questions in the same format (e.g. near-miss probes)")
    ap.add_argument("--mmrag", default="/work/main/.venv/bin/mmrag")
    ap.add_argument("--pythonpath", default="/work/shims/llm")
    ap.add_argument("--ctx", type=int, default=4096)
    ap.add_argument("--server-max-tokens", type=int, default=-1, help="llama.cpp n_predict (default when unset)")
    ap.add_argument("--timeout-s", type=float, default=900.0, help="llm_timeout_s for mmrag")
    args = ap.parse_args()

    questions = [json.loads(line) for line in args.questions.read_text(encoding="utf-8").splitlines() if line.strip()]
    chosen = [q for q in questions if q["id"] in args.only.split(",")] if args.only else pick(questions)
    if args.extra:
        chosen += [json.loads(x) for x in args.extra.read_text(encoding="utf-8").splitlines() if x.strip()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    config = args.out.with_suffix(".toml")
    config.write_text(f"[models]\nllm_timeout_s = {args.timeout_s}\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": args.pythonpath, "MMRAG_CONFIG": str(config)}
    for var in ("MMRAG_LLM_BASE_URL", "MMRAG_LLM_MODEL", "OPENAI_API_KEY"):
        env.pop(var, None)
    server = None
    if args.gguf:
        server = start_server(
            args.gguf, ctx=args.ctx, max_tokens=args.server_max_tokens, log_path=args.out.with_suffix(".server.log")
        )
        env |= {"MMRAG_LLM_BASE_URL": server.base_url, "MMRAG_LLM_MODEL": "anything"}
    try:
        with args.out.open("w", encoding="utf-8") as out:
            for q in chosen:
                seen = len(server.timings()) if server else 0
                t0 = time.monotonic()
                proc = subprocess.run(
                    [args.mmrag, "ask", "--json", "--index", str(args.index), str(q["question"])],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=args.timeout_s * 3,
                )
                wall = time.monotonic() - t0
                try:
                    data = json.loads(proc.stdout)
                except ValueError:
                    data = {"answer": "", "error": proc.stderr[-800:], "declined": None}
                expected = [str(e) for e in q["answer"]]  # type: ignore[union-attr]
                answer = str(data.get("answer", ""))
                row = {
                    "label": args.label,
                    "id": q["id"],
                    "kind": q["kind"],
                    "expected": expected,
                    "answer": answer,
                    "declined": data.get("declined"),
                    "ok": (bool(data.get("declined")) if q["kind"] == "none" else contains(answer, expected)),
                    "citations": [c["n"] for c in data.get("citations", [])],
                    "cited_sources": [c["source"] for c in data.get("citations", [])],
                    "flagged": data.get("flagged", []),
                    "removed_citations": data.get("removed_citations", []),
                    "wall_s": round(wall, 1),
                    "load1": round(os.getloadavg()[0], 2),
                    "llm": server.timings()[seen:] if server else [],
                    "rc": proc.returncode,
                    "error": data.get("error", "") or (proc.stderr[-400:] if proc.returncode else ""),
                }
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                out.flush()
                print(f"{q['id']} ok={row['ok']} declined={row['declined']} {wall:.0f}s {answer[:100]!r}", flush=True)
    finally:
        if server is not None:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
