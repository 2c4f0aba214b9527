"""The ``mmrag`` command: parse, load config, call one library function, render the result.

Heavy libraries (torch, chromadb, unstructured) are imported only inside the commands that need
them, so ``mmrag --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.ingest.errors import MmragError
from mmrag.pipeline.config import Config, ConfigError, check_broker, load_config
from mmrag.pipeline.filters import FilterError

if TYPE_CHECKING:
    from mmrag.pipeline.filters import Filters

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"takes a whole number of at least 1, got {text!r}")
    return value


def _common(parser: argparse.ArgumentParser, *, json_flag: bool = True) -> None:
    parser.add_argument("--index", type=Path, help="index folder (default: $MMRAG_INDEX or ~/.local/share/mmrag/index)")
    parser.add_argument(
        "--config", type=Path, help="config file (default: $MMRAG_CONFIG or ~/.config/mmrag/config.toml)"
    )
    if json_flag:
        parser.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")


def _filters(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("filters")
    group.add_argument("--modality", action="append", default=[], help="text, table, image, frame, speech, moment")
    group.add_argument("--type", action="append", default=[], dest="kinds", help="file type: pdf, docx, html, ...")
    group.add_argument("--folder", action="append", default=[], help="only files under this folder (relative)")
    group.add_argument("--glob", action="append", default=[], help="only files matching this pattern, e.g. '*.pdf'")
    group.add_argument("--after", help="only files modified on or after this date (YYYY-MM-DD)")
    group.add_argument("--before", help="only files modified on or before this date (YYYY-MM-DD)")
    _as_user(group)


def _as_user(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument(
        "--as",
        dest="as_user",
        metavar="USER",
        help="with document permissions on: see only what this OS user may read (default: you)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmrag",
        description="Search and ask a drive of documents, slides, tables, images, audio and video; "
        "answers cite the page, slide, rows or seconds.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("ingest", help="index files, folders and configured sources (re-runs are incremental)")
    p.add_argument("paths", nargs="+", metavar="PATH|SOURCE", help="files, folders, or names of [sources.NAME]")
    p.add_argument("--reindex", action="store_true", help="rebuild this index from scratch (after changing models)")
    p.add_argument(
        "--workers", type=_at_least_one, metavar="N",
        help="read files in N worker processes while this one embeds and writes (default: [ingest] workers, 1)",
    )  # fmt: skip
    p.add_argument(
        "--broker", metavar="URL",
        help="have `mmrag ingest-worker` processes on any machine read the files, through this Redis "
        "(redis://host:6379/0; default: [ingest] broker, MMRAG_INGEST_BROKER)",
    )  # fmt: skip
    _common(p)

    p = sub.add_parser("ingest-worker", help="read files for ingests that use a broker (--broker), until Ctrl+C")
    p.add_argument("--broker", metavar="URL", help="the Redis the ingest node uses (default: [ingest] broker)")
    p.add_argument(
        "--concurrency", type=_at_least_one, metavar="N",
        help="files read at once, each in its own process (default: this machine's cores)",
    )  # fmt: skip
    p.add_argument("--name", default="", help="this worker's name in logs and reports (default: mmrag)")
    p.add_argument("--config", type=Path, help="config file (default: $MMRAG_CONFIG or ~/.config/mmrag/config.toml)")
    p.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")

    p = sub.add_parser("search", help="ranked evidence for a query (or for an example image)")
    p.add_argument("query", nargs="?")
    p.add_argument(
        "--image", type=Path, metavar="FILE", help="find images and frames like this picture, and text about it"
    )
    p.add_argument("--k", type=int, default=10, help="number of hits (default 10)")
    p.add_argument("--no-keyword", action="store_true", help="vector search only (for comparison)")
    _common(p)
    _filters(p)

    p = sub.add_parser("ask", help="answer a question from the indexed files, with citations")
    p.add_argument("question")
    p.add_argument(
        "--stream",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="print the answer as it is generated (default: on in a terminal, off with --json)",
    )
    _common(p)
    _filters(p)

    p = sub.add_parser("eval", help="retrieval and answer quality on a question set (hit@1, hit@5, MRR@10)")
    p.add_argument("questions", type=Path, metavar="QUESTIONS.jsonl")
    p.add_argument("--k", type=int, default=10, help="hits retrieved per question (default 10)")
    p.add_argument("--no-answer", action="store_true", help="score retrieval only; skip the answer stage")
    p.add_argument("--no-keyword", action="store_true", help="vector search only (for comparison)")
    p.add_argument(
        "--lists",
        help="candidate lists to fuse, for comparisons: any of vector,keyword,exact,modality (default: all)",
    )
    _as_user(p)
    _common(p)

    p = sub.add_parser("watch", help="keep the index in step with folders and sources until Ctrl+C")
    p.add_argument("paths", nargs="+", metavar="PATH|SOURCE", help="folders, or names of [sources.NAME] sections")
    p.add_argument(
        "--full-seconds",
        type=float,
        default=3600.0,
        help="list every folder in full this often, whatever the file events said (default 3600)",
    )
    _common(p)

    p = sub.add_parser("doctor", help="check the index's health (and mend it with --repair, --rebuild)")
    p.add_argument("--repair", action="store_true", help="mend what the checks find (as the next ingest would)")
    p.add_argument("--rebuild", action="store_true", help="rewrite the vector index into a fresh collection")
    _common(p)

    p = sub.add_parser("models", help="which model plays each role, where it was found, or how to provide it")
    _common(p)

    p = sub.add_parser("status", help="what the index holds")
    _as_user(p)
    _common(p)

    p = sub.add_parser("llm", help="run a local language model for the answer stage (llama.cpp, optional)")
    llm_sub = p.add_subparsers(dest="llm_command", required=True, metavar="ACTION")
    q = llm_sub.add_parser("serve", help="serve a .gguf model on 127.0.0.1 (OpenAI-compatible) until Ctrl+C")
    q.add_argument("gguf", type=Path, metavar="MODEL.gguf")
    q.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    q.add_argument("--port", type=int, default=8090, help="port (default 8090)")
    q.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    q.add_argument("--ctx", type=int, default=8192, help="context size in tokens (default 8192)")
    q.add_argument("--max-tokens", type=int, default=400, help="longest reply when a request sets none (default 400)")
    q.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    q.add_argument("--config", type=Path, help=argparse.SUPPRESS)

    from mmrag.pipeline.bench import main as bench
    from mmrag.pipeline.http import cli as server_cli
    from mmrag.pipeline.mcp import cli as mcp_cli

    p = server_cli.register(sub)
    _common(p)
    p = mcp_cli.register(sub)
    _common(p, json_flag=False)  # stdout is the protocol channel
    bench.register(sub)
    return parser


def _config(args: argparse.Namespace) -> Config:
    cfg = load_config(config_file=args.config, index_dir=getattr(args, "index", None))
    return cfg


class UsageError(MmragError):
    pass


def _parse_filters(args: argparse.Namespace, cfg: Config) -> Filters:
    from mmrag.pipeline.filters import parse_filters
    from mmrag.pipeline.permissions import asker

    filters = parse_filters(
        modalities=args.modality,
        kinds=args.kinds,
        folders=args.folder,
        globs=args.glob,
        after=args.after,
        before=args.before,
    )
    return replace(filters, principals=asker(cfg, args.as_user))


def _emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def cmd_ingest(args: argparse.Namespace, cfg: Config) -> int:
    from mmrag.pipeline import render
    from mmrag.pipeline.app import open_app
    from mmrag.pipeline.ingest_run import lower_priority, run_ingest

    if args.workers is not None:
        cfg = replace(cfg, ingest=replace(cfg.ingest, workers=args.workers))
    if args.broker is not None:
        check_broker(args.broker, "--broker")
        cfg = replace(cfg, ingest=replace(cfg.ingest, broker=args.broker))
    lower_priority(cfg.ingest.nice)  # before any thread starts: all of them inherit it
    app = open_app(cfg, create=True, reindex=args.reindex)
    try:
        notices = [] if app.models.clip.available else [app.models.clip.remedy]
        if app.models.photo_words.available and app.models.photo_words.remedy:
            notices.append(app.models.photo_words.remedy)  # labels are indexed, but not in plain words
        for note in notices:
            render.notice(note)
        with render.IngestProgress(enabled=not args.verbose) as progress:
            report = run_ingest(args.paths, app, progress)
    finally:
        app.close()
    if args.json:
        _emit_json({**report.to_json(), "index": str(cfg.index_dir), "notices": notices})
    else:
        render.ingest_report(report, cfg.index_dir)
    return EXIT_OK


def cmd_ingest_worker(args: argparse.Namespace, cfg: Config) -> int:
    import os

    from mmrag.pipeline.ingest_worker import run_worker

    broker = args.broker or cfg.ingest.broker
    if not broker:
        raise UsageError("give the broker the ingest node uses: --broker redis://HOST:6379/0 (or [ingest] broker)")
    check_broker(broker, "--broker")
    if os.geteuid() == 0 and not os.environ.get("C_FORCE_ROOT"):  # Celery refuses too, less clearly
        raise UsageError(
            "ingest workers unpickle their tasks: run them as an unprivileged user, or set C_FORCE_ROOT=1 "
            "if the broker is reachable only by the ingest node and its workers"
        )
    from mmrag.pipeline.ingest_celery import reach

    reach(broker)
    if args.config is not None:  # the task's processes read this machine's model locations from it
        os.environ["MMRAG_CONFIG"] = str(args.config.resolve())
    run_worker(
        broker, args.concurrency or os.cpu_count() or 1, name=args.name, loglevel="INFO" if args.verbose else "WARNING"
    )
    return EXIT_OK


def cmd_watch(args: argparse.Namespace, cfg: Config) -> int:
    import signal
    import threading

    from mmrag.pipeline import render
    from mmrag.pipeline.app import open_app
    from mmrag.pipeline.ingest_run import IngestReport, lower_priority
    from mmrag.pipeline.watch import watch, watched

    if args.full_seconds <= 0:
        raise UsageError("--full-seconds must be more than 0")
    lower_priority(cfg.ingest.nice)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    app = open_app(cfg, create=True)

    def shown(report: IngestReport) -> None:
        if args.json:
            sys.stdout.write(json.dumps(report.to_json(), ensure_ascii=False) + "\n")  # one line per round
            sys.stdout.flush()
        elif report.changed or report.failed or report.skipped:
            render.ingest_report(report, cfg.index_dir)

    what = None
    try:
        what = watched(args.paths, app)
        render.notice(f"watching {len(what.folders)} folders and {len(what.sources)} sources; Ctrl+C stops")
        watch(what, app, stop, full_seconds=args.full_seconds, on_round=shown)
    finally:
        for source in what.sources if what is not None else ():
            source.close()
        app.close()
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace, cfg: Config) -> int:
    from mmrag.pipeline import render
    from mmrag.pipeline.doctor import consistency, probe_store, repair, snapshot_checks

    replica = cfg.store.role == "replica"
    if replica and (args.repair or args.rebuild):
        raise UsageError(
            "this is an API replica: --repair and --rebuild run on the ingest node, which publishes what they mend"
        )
    checks = [probe_store(cfg, args.config)]
    done: list[str] = []
    if checks[0].ok and not replica:  # a replica's parts are the ingest node's, checked there
        from mmrag.pipeline.app import open_app

        app = open_app(cfg, create=False)
        try:
            if args.repair or args.rebuild:
                done = repair(app, rebuild=args.rebuild)
            checks += consistency(app)
        finally:
            app.close()
    checks += snapshot_checks(cfg)
    healthy = all(c.ok for c in checks)
    if args.json:
        _emit_json({"healthy": healthy, "checks": [c.to_json() for c in checks], "repairs": done})
    else:
        for line in done:
            render.notice(line)
        for check in checks:
            mark = "ok  " if check.ok else "FAIL"
            render.out.print(f"{mark} {check.name}: {check.detail}" + (f" → {check.remedy}" if check.remedy else ""))
    return EXIT_OK if healthy else 1


def cmd_search(args: argparse.Namespace, cfg: Config) -> int:
    from mmrag.pipeline import render
    from mmrag.pipeline.api import search_index
    from mmrag.pipeline.app import open_app

    if args.k < 1:
        raise UsageError("--k must be at least 1")
    if (args.image is None) == (not args.query):
        raise UsageError("give a query or --image FILE (one of them)")
    filters = _parse_filters(args, cfg)
    notices: list[str] = []
    description = None
    app = open_app(cfg, create=False)
    try:
        if args.image is not None:
            from mmrag.pipeline.image_query import describe_image, image_search_notices, search_by_image

            description = describe_image(args.image, app.models.ingest_settings())
            notices = image_search_notices(app, description)
            hits = search_by_image(
                app, args.image, args.k, filters, description=description, keyword=not args.no_keyword
            )
        else:
            hits = search_index(app, args.query, args.k, filters, keyword=not args.no_keyword)
    finally:
        app.close()
    for note in notices:
        render.notice(note)
    query = args.query or f"image {args.image}"
    if args.json:
        _emit_json(
            {"query": query, "description": description, "notices": notices, "hits": [h.to_json() for h in hits]}
        )
    else:
        render.hits(query, hits)
    return EXIT_OK


def cmd_ask(args: argparse.Namespace, cfg: Config) -> int:
    from mmrag.pipeline import render
    from mmrag.pipeline.api import ask_index
    from mmrag.pipeline.app import open_app

    filters = _parse_filters(args, cfg)
    stream = args.stream if args.stream is not None else (sys.stdout.isatty() and not args.json)
    sink = render.AnswerStream(args.question) if stream and not args.json else None
    app = open_app(cfg, create=False)
    try:
        answer, hits = ask_index(app, args.question, filters, stream=sink)
    finally:
        app.close()
    if args.json:
        _emit_json({"question": args.question, **answer.to_json(), "hits": [h.to_json() for h in hits]})
    else:
        render.answer(args.question, answer, streamed=sink is not None)
    return EXIT_OK


def cmd_eval(args: argparse.Namespace, cfg: Config) -> int:
    from mmrag.pipeline import render
    from mmrag.pipeline.api import ANSWER_HITS, answer_hits, is_computed, search_index
    from mmrag.pipeline.app import open_app
    from mmrag.pipeline.evaluate import EvalReport, load_questions, record
    from mmrag.pipeline.filters import parse_filters
    from mmrag.pipeline.permissions import asker
    from mmrag.retrieval.search import ALL_LISTS

    if args.k < 1:
        raise UsageError("--k must be at least 1")
    questions = load_questions(args.questions)
    lists = None
    if args.lists:
        lists = frozenset(x.strip() for x in args.lists.split(",") if x.strip())
        if not lists or not lists <= ALL_LISTS:
            raise UsageError(f"--lists takes names from {', '.join(sorted(ALL_LISTS))}")
    report = EvalReport()
    principals = asker(cfg, args.as_user)
    filters = replace(parse_filters(), principals=principals)
    app = open_app(cfg, create=False)
    try:
        for q in questions:
            k = max(args.k, ANSWER_HITS)
            hits = search_index(app, q.question, k, filters, keyword=not args.no_keyword, lists=lists)
            answer = extractive = None
            if not args.no_answer:  # from the hits ask would answer from (it computes table rows itself)
                stored = [h for h in hits if not is_computed(h)][:ANSWER_HITS]
                answer = answer_hits(app, q.question, stored, principals=principals).to_json()
                if app.models.llm() is not None:  # the generated answers' figures beside the extractive ones
                    extractive = answer_hits(app, q.question, stored, principals=principals, extractive=True).to_json()
            record(report, q, hits[: args.k], answer, extractive)
    finally:
        app.close()
    if args.json:
        _emit_json(report.to_json())
    else:
        render.evaluation(report.to_json())
    return EXIT_OK


def cmd_models(args: argparse.Namespace, cfg: Config) -> int:
    from mmrag.pipeline import render
    from mmrag.pipeline.models import resolve_all

    found = resolve_all(cfg.models)
    if args.json:
        _emit_json({"models": [r.to_json() for r in found], "allow_downloads": cfg.models.allow_downloads})
    else:
        render.models(found, cfg.models.allow_downloads)
    return EXIT_OK


def cmd_status(args: argparse.Namespace, cfg: Config) -> int:
    from mmrag.pipeline import render
    from mmrag.pipeline.api import index_status
    from mmrag.pipeline.app import open_app
    from mmrag.pipeline.permissions import asker

    principals = asker(cfg, args.as_user)  # with permissions on: the counts of what that person may read
    app = open_app(cfg, create=False)
    try:
        data = index_status(app, principals)
    finally:
        app.close()
    if args.json:
        _emit_json(data)
    else:
        render.status(data)
    return EXIT_OK


def cmd_bench(args: argparse.Namespace, cfg: Config) -> int:
    from mmrag.pipeline.bench import main as bench

    return bench.run(args, cfg)


def cmd_serve(args: argparse.Namespace, cfg: Config) -> int:
    from mmrag.pipeline.http import cli as server_cli

    return server_cli.run(args, cfg)


def cmd_mcp(args: argparse.Namespace, cfg: Config) -> int:
    from mmrag.pipeline.mcp import cli as mcp_cli

    return mcp_cli.run(args, cfg)


def cmd_llm(args: argparse.Namespace, cfg: Config) -> int:
    from mmrag.pipeline.answer.local_llm import serve

    return serve(args.gguf, args.host, args.port, args.threads, args.ctx, max_tokens=args.max_tokens)


COMMANDS = {
    "ingest": cmd_ingest,
    "ingest-worker": cmd_ingest_worker,
    "watch": cmd_watch,
    "doctor": cmd_doctor,
    "search": cmd_search,
    "ask": cmd_ask,
    "eval": cmd_eval,
    "models": cmd_models,
    "status": cmd_status,
    "serve": cmd_serve,
    "mcp": cmd_mcp,
    "bench": cmd_bench,
    "llm": cmd_llm,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.ERROR,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        cfg = _config(args)
        return COMMANDS[args.command](args, cfg)
    except (UsageError, FilterError) as e:
        parser.print_usage(sys.stderr)
        print(f"mmrag {args.command}: {e}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as e:
        print(f"mmrag: configuration error: {e}", file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        print("mmrag: interrupted; re-run the same command to continue where it stopped", file=sys.stderr)
        return EXIT_FAIL
    except Exception as e:
        from mmrag.pipeline.errors import user_message

        message = user_message(e)
        if message is None:
            raise
        print(f"mmrag {args.command}: {message}", file=sys.stderr)
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
