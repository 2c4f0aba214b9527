"""``mmrag doctor``: is this index healthy, and if not, what is wrong and what mends it.

The vector store is first opened in a separate process: a damaged HNSW segment can crash the process
that loads it (a segfault, not an exception), and the doctor must live to say so. Then, in this
process, the parts of the index are checked against each other: the manifest's files against the
vector store's and keyword index's chunks, pictures that no chunk points to, an interrupted
``--reindex``, and how worn the vector graph is (chunks replaced or deleted since the last rebuild).

``--repair`` does what the next ingest would do first (forget files whose chunks are missing so they
are read again, delete chunks of files the manifest does not record, sweep orphan pictures);
``--rebuild`` rewrites the vector index into a fresh collection. Both take the ingest lock.

Where the index is published to a shared location (``[store] shared``), the doctor also looks at the
snapshots: on the ingest node, whether one is current and whether a run's changes wait unpublished
(``--repair`` publishes them); on an API replica, whether one is current, how old, and whether this
replica's cache holds it. A replica's probe opens the current snapshot (copied into a temporary
folder) with the live vector store, as its server does; the index's parts are checked against each
other on the ingest node, since a replica's snapshot lags the live vectors by design.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from mmrag.pipeline.app import REINDEX_MARKER, App, ingest_lock, ingest_running, open_app
from mmrag.pipeline.config import Config, load_config
from mmrag.pipeline.ingest_run import CHURN, incomplete, reconcile, sweep_media
from mmrag.retrieval.manifest import OK

PROBE_SECONDS = 300


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    remedy: str = ""

    def to_json(self) -> dict[str, object]:
        return {"check": self.name, "ok": self.ok, "detail": self.detail, "remedy": self.remedy}


def probe_store(cfg: Config, config_file: Path | None) -> Check:
    """Open the vector store and run one query in a child process; a crash there is reported, not suffered."""
    argv = [sys.executable, "-m", "mmrag.pipeline.doctor", str(cfg.index_dir)]
    if config_file is not None:
        argv.append(str(config_file))
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=PROBE_SECONDS)
    except subprocess.TimeoutExpired:
        return Check("store opens", False, f"opening the vector store took over {PROBE_SECONDS} s", _REINDEX)
    if done.returncode < 0:
        return Check(
            "store opens", False, f"the process that opened the vector store was killed by signal {-done.returncode} "
            "(a damaged index segment)", _REINDEX,
        )  # fmt: skip
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        return Check("store opens", False, f"opening the vector store failed: {last}", _REINDEX)
    found = json.loads(done.stdout.strip().splitlines()[-1])
    where = f" (with snapshot {found['snapshot']})" if found.get("snapshot") else ""
    return Check("store opens", True, f"{found['count']:,} chunks; a query answered in {found['ms']:.0f} ms{where}")


_REINDEX = "rebuild it from the files: mmrag ingest PATH... --reindex (or restore the index folder from a backup)"


def _probe(index: str, config_file: str | None) -> int:
    import time

    import numpy as np

    from mmrag.retrieval.store import SearchFilter

    cfg = load_config(config_file=Path(config_file) if config_file else None, index_dir=Path(index))
    with tempfile.TemporaryDirectory(prefix="mmrag-doctor-") as tmp:
        snapshot = ""
        if cfg.store.role == "replica":  # its own cache may be swapped under it: a private copy
            from mmrag.pipeline.shared import open_shared
            from mmrag.pipeline.snapshots import fetch

            location = open_shared(cfg)
            assert location is not None  # a replica's config names one (checked when it loads)
            fetched = fetch(location, Path(tmp), media=False, also_held=cfg.index_dir)  # blocks it holds: copied
            cfg, snapshot = replace(cfg, index_dir=fetched.folder), fetched.id
        app = open_app(cfg, create=False)
        try:
            started = time.perf_counter()
            vector = np.zeros(app.store.layout.dim, dtype=np.float32)
            vector[0] = 1.0
            app.store.query(vector, 1, SearchFilter())
            ms = (time.perf_counter() - started) * 1000
            print(json.dumps({"count": app.store.count(), "ms": ms, "snapshot": snapshot}))
        finally:
            app.close()
    return 0


def snapshot_checks(cfg: Config) -> list[Check]:
    """Where the index is published (``[store] shared``): is a snapshot current and how old is it; on the
    ingest node, do a run's changes wait unpublished; on a replica, does its cache hold the current one."""
    if not cfg.store.shared:
        return []
    from mmrag.pipeline.shared import SharedUnavailable, open_shared
    from mmrag.pipeline.snapshots import INFO, PENDING, created, current

    replica = cfg.store.role == "replica"
    unreachable = "make the shared location reachable from this machine"
    try:
        location = open_shared(cfg)
    except SharedUnavailable as e:
        return [Check("snapshot published", False, str(e), unreachable)]
    assert location is not None  # [store] shared is set
    try:
        now = current(location)
    except SharedUnavailable as e:
        return [Check("snapshot published", False, str(e), unreachable)]
    finally:
        location.close()
    if now is None:
        remedy = (
            "run mmrag ingest on the ingest node (with the same [store] shared)" if replica
            else "mmrag doctor --repair publishes this index (so does the next mmrag ingest)"
        )  # fmt: skip
        return [Check("snapshot published", False, f"nothing is published at {location.where} yet", remedy)]
    detail = f"snapshot {now} at {location.where}, published {_ago(time.time() - created(now))} ago"
    if replica:
        held = (cfg.index_dir / "snapshots" / now / INFO).is_file()
        detail += (
            "; this replica's cache holds it" if held
            else f"; this replica's cache does not hold it yet (its server copies it within {cfg.store.poll_seconds:g} s)"
        )  # fmt: skip
        return [Check("snapshot published", True, detail)]
    if not (cfg.index_dir / PENDING).exists():
        return [Check("snapshot published", True, detail + "; every change is published")]
    if ingest_running(cfg.index_dir):
        return [Check("snapshot published", True, detail + "; an ingest is running and publishes as it goes")]
    return [
        Check(
            "snapshot published", False, detail + "; an ingest run was cut short before publishing its changes",
            "mmrag doctor --repair publishes them (so does the next mmrag ingest)",
        )
    ]  # fmt: skip


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def consistency(app: App) -> list[Check]:
    """The index's parts checked against each other (nothing is changed)."""
    recorded = {(r.root, r.source): r for r in app.manifest.files() if r.status == OK}
    stored = app.store.ids()
    by_file = app.keyword.record_ids()
    missing = [source for _, source in incomplete(recorded, stored, by_file)]
    unrecorded = sorted(source for _, source in by_file.keys() - recorded.keys())
    keyword_ids = set().union(*by_file.values()) if by_file else set()
    stray = len(stored - keyword_ids)
    checks = [
        Check(
            "files complete", not missing,
            f"{len(recorded):,} files recorded as indexed" + (f"; {len(missing)} have chunks missing: "
            f"{', '.join(missing[:5])}" if missing else ", every chunk present"),
            "mmrag doctor --repair (they are read again by the next ingest)" if missing else "",
        ),
        Check(
            "no stray chunks", not unrecorded and not stray,
            "no chunks of unrecorded files" if not unrecorded and not stray else
            f"{len(unrecorded)} unrecorded files in the keyword index, {stray} vector records without keywords",
            "mmrag doctor --repair" if unrecorded or stray else "",
        ),
    ]  # fmt: skip
    pictures = sweep_media(app, dry_run=True)
    checks.append(
        Check("no orphan pictures", not pictures, f"{pictures} pictures no chunk points to" if pictures else
              "every picture belongs to a chunk", "mmrag doctor --repair" if pictures else "")
    )  # fmt: skip
    pending = (app.path / REINDEX_MARKER).exists()
    checks.append(
        Check("no interrupted reindex", not pending, "a --reindex was interrupted" if pending else "none pending",
              "mmrag ingest PATH... finishes it" if pending else "")
    )  # fmt: skip
    churn = int(app.manifest.get_meta(CHURN) or 0)
    held = max(1, app.store.count())
    ratio = app.cfg.store.rebuild_after_churn
    worn = ratio > 0 and churn >= max(app.cfg.store.rebuild_min_churn, ratio * held)
    checks.append(
        Check("vector graph fresh", not worn, f"{churn:,} chunks replaced or deleted since the last rebuild "
              f"({churn / held:.0%} of those held)", "mmrag doctor --rebuild" if worn else "")
    )  # fmt: skip
    return checks


def repair(app: App, *, rebuild: bool) -> list[str]:
    """Mend what ``consistency`` finds; returns what was done. Holds the ingest lock meanwhile."""
    done: list[str] = []
    with ingest_lock(app.path):
        forgotten = reconcile(app)
        if forgotten:
            done.append(f"forgot {len(forgotten)} files with chunks missing (the next ingest reads them again)")
        stray = app.store.ids() - set().union(*app.keyword.record_ids().values(), set())
        if stray:
            for root, source in app.store.files_of(stray):
                app.index.replace_file(root, source, [], None)
            done.append(f"deleted {len(stray)} vector records of no recorded file")
        swept = sweep_media(app)
        if swept:
            done.append(f"deleted {swept} pictures no chunk points to")
        if rebuild:
            held = app.store.rebuild()
            app.manifest.set_meta(CHURN, "0")
            done.append(f"rebuilt the vector index ({held:,} chunks) into a fresh collection")
        published = _publish_if_due(app, changed=bool(done))
        if published:
            done.append(published)
    return done


def _publish_if_due(app: App, *, changed: bool) -> str:
    """On an ingest node that publishes: publish when the repair changed something, a run's changes
    wait, or nothing is published yet (the caller holds the ingest lock); what was done, or ""."""
    from mmrag.pipeline.shared import open_shared
    from mmrag.pipeline.snapshots import PENDING, current, publish

    location = open_shared(app.cfg)
    if location is None:
        return ""
    try:
        marker = app.path / PENDING
        if not (changed or marker.exists() or current(location) is None):
            return ""
        published = publish(app, location)
        marker.unlink(missing_ok=True)
        return f"published snapshot {published.id} to {location.where}"
    finally:
        location.close()


if __name__ == "__main__":  # the store probe ``probe_store`` runs
    sys.exit(_probe(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
