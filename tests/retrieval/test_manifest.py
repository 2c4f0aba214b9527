"""The manifest under concurrent use (parallel ingest workers, the server's threads)."""

from __future__ import annotations

from pathlib import Path


def test_the_manifest_can_be_shared_by_threads(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from mmrag.retrieval.manifest import OK, FileRecord, Manifest

    manifest = Manifest(tmp_path / "manifest.sqlite")

    def work(n: int) -> int:
        manifest.put(FileRecord("/drive", f"f{n}.txt", n, n, f"{n:064x}", "text", OK, "", 1))
        assert manifest.get("/drive", f"f{n}.txt") is not None
        return len(list(manifest.files("/drive")))

    with ThreadPoolExecutor(4) as pool:
        seen = list(pool.map(work, range(200)))
    assert max(seen) == 200 and manifest.counts()[OK] == 200
    manifest.close()
