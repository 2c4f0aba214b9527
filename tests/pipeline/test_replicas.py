"""Several machines on 127.0.0.1: a ``chroma run`` server, an ingest node (``mmrag ingest`` in its own process,
publishing snapshots to a shared folder) and two ``mmrag serve`` API replicas with empty caches of their own.

Both replicas find what was ingested, with citations and thumbnails; a change re-ingested reaches both
within the poll bound; an ingest killed before it could publish leaves them on the previous snapshot,
with keyword hits of a file already deleted from Chroma filtered out; a replica restarted with an
empty cache serves the same results; a replica refuses ingest jobs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mmrag.pipeline.bench.common import free_port

POLL_SECONDS = 0.5
PICKUP_BOUND = 10.0  # poll interval + copying a snapshot + opening it, with room for a loaded machine


def _get(url: str, timeout: float = 30) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as res:
            return res.status, res.read(), res.headers.get("content-type", "")
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers.get("content-type", "")


def _json(url: str) -> dict[str, object]:
    status, body, _ = _get(url)
    assert status == 200, f"{url}: {status} {body[:500]!r}"
    data: dict[str, object] = json.loads(body)
    return data


class Replica:
    """``mmrag serve`` as an API replica in its own process."""

    def __init__(self, config: Path, cache: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = cache.with_suffix(".log")
        cache.mkdir(parents=True, exist_ok=True)
        assert not any(cache.iterdir()), "a replica starts with an empty cache"
        command = ["serve", "--port", str(self.port), "--index", str(cache), "--config", str(config)]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mmrag.pipeline.cli", *command],
                env={**env, "MMRAG_ROLE": "replica"},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 90
        while True:
            try:
                if _json(f"{self.url}/api/status").get("ready"):
                    return
            except (OSError, AssertionError):
                pass
            assert self.proc.poll() is None, f"the replica stopped: {self.log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"the replica did not start: {self.log.read_text()[-2000:]}"
            time.sleep(0.3)

    def snapshot(self) -> str:
        return str(_json(f"{self.url}/api/status")["snapshot"])

    def search(self, q: str, **params: str) -> list[dict[str, object]]:
        query = urllib.parse.urlencode({"q": q, "k": "5", **params})
        hits: list[dict[str, object]] = _json(f"{self.url}/api/search?{query}")["hits"]  # type: ignore[assignment]
        return hits

    def sources(self, q: str) -> list[str]:
        return [str(h["source"]) for h in self.search(q)]

    def ask(self, q: str) -> dict[str, object]:
        status, body, _ = _get(f"{self.url}/api/ask?" + urllib.parse.urlencode({"q": q}), timeout=60)
        assert status == 200
        for block in body.decode().strip().split("\n\n"):
            fields = dict(line.split(": ", 1) for line in block.splitlines())
            if fields["event"] == "answer":
                answer: dict[str, object] = json.loads(fields["data"])
                return answer
        raise AssertionError(f"no answer event: {body[-1000:]!r}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Cluster:
    def __init__(self, tmp: Path, chroma: str) -> None:
        self.tmp = tmp
        self.drive = tmp / "drive"
        self.shared = tmp / "shared"
        self.config = tmp / "mmrag.toml"
        self.config.write_text(
            f"""[store]
kind = "chroma-http"
url = "{chroma}"
collection = "replicas{uuid.uuid4().hex[:10]}"
shared = "{self.shared}"
poll_seconds = {POLL_SECONDS}
keep_seconds = 3600.0

[models]
ocr_engine = "none"
slide_renderer = "none"
"""
        )
        self.env = {**os.environ, "XDG_CONFIG_HOME": str(tmp / "xdg")}
        self.env.pop("MMRAG_FAULT", None)
        self.replicas: list[Replica] = []

    def ingest(self, fault: str = "") -> subprocess.CompletedProcess[str]:
        """``mmrag ingest`` on the ingest node: its own process, its own index folder."""
        env = {**self.env, "MMRAG_FAULT": fault} if fault else self.env
        command = ["ingest", str(self.drive), "--index", str(self.tmp / "ingest-node"), "--config", str(self.config)]
        return subprocess.run(
            [sys.executable, "-m", "mmrag.pipeline.cli", *command, "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    def current(self) -> str:
        return (self.shared / "CURRENT").read_text().strip()

    def replica(self, name: str) -> Replica:
        replica = Replica(self.config, self.tmp / name, self.env)
        self.replicas.append(replica)
        return replica


@pytest.fixture
def cluster(tmp_path: Path, chroma_server: str) -> Iterator[Cluster]:
    made = Cluster(tmp_path, chroma_server)
    made.drive.mkdir()
    (made.drive / "committee.txt").write_text("The alpha committee meets on Tuesdays in the zeppelin room.\n")
    (made.drive / "budget.txt").write_text("The bravo budget for the walrus project is 12,000 euros.\n")
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (320, 200), (30, 120, 200))
    ImageDraw.Draw(image).rectangle((40, 40, 200, 150), fill=(240, 200, 20))
    image.save(made.drive / "blue-chart.png")
    try:
        yield made
    finally:
        for replica in made.replicas:
            replica.stop()


def _until(check: object, what: str, bound: float = PICKUP_BOUND) -> float:
    """Seconds until ``check()`` is true; fails past ``bound``."""
    started = time.monotonic()
    while True:
        if check():  # type: ignore[operator]
            return time.monotonic() - started
        assert time.monotonic() - started < bound, f"{what}: not within {bound} s"
        time.sleep(0.2)


def test_two_replicas_follow_an_ingest_node_through_a_chroma_server(cluster: Cluster) -> None:
    done = cluster.ingest()
    assert done.returncode == 0, done.stderr[-2000:]
    first = cluster.current()
    one, two = cluster.replica("cache-one"), cluster.replica("cache-two")

    for replica in (one, two):
        assert replica.snapshot() == first
        assert replica.sources("walrus project budget")[0] == "budget.txt"
        assert replica.sources("zeppelin room")[0] == "committee.txt"
        answer = replica.ask("How much is the budget of the walrus project?")
        assert "12,000" in str(answer["answer"])
        citations = answer["citations"]
        assert isinstance(citations, list) and citations[0]["source"] == "budget.txt"
        picture = replica.search("blue chart", modality="image")[0]
        assert picture["source"] == "blue-chart.png" and "image=" in str(picture["preview"])
        status, body, kind = _get(replica.url + str(picture["preview"]))
        assert status == 200 and kind.startswith("image/") and len(body) > 100  # from the shared media folder

    refused = urllib.request.Request(
        f"{one.url}/api/ingest",
        data=json.dumps({"paths": [str(cluster.drive)]}).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(refused, timeout=10)
    assert error.value.code == 409 and "ingest node" in error.value.read().decode()

    # edit one file, delete one, add one; the ingest dies after writing Chroma and the SQLite files but
    # before it could publish them: the replicas stay on the previous snapshot...
    (cluster.drive / "committee.txt").write_text("The alpha committee now meets on Fridays in the observatory.\n")
    (cluster.drive / "budget.txt").unlink()
    (cluster.drive / "harbour.txt").write_text("The harbour ferry timetable changes in April.\n")
    killed = cluster.ingest(fault="publish-before-current")
    assert killed.returncode == 137, killed.stderr[-2000:]
    assert cluster.current() == first
    time.sleep(POLL_SECONDS * 4)
    for replica in (one, two):
        assert replica.snapshot() == first
        # ...whose keyword index still holds the deleted file, but Chroma no longer does: not shown
        assert "budget.txt" not in replica.sources("walrus project budget")

    # the next run has nothing new to read but publishes what the killed one could not
    again = cluster.ingest()
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads(again.stdout)["unchanged"] == 3
    second = cluster.current()
    assert second != first
    for replica in (one, two):
        _until(lambda r=replica: r.snapshot() == second, "the new snapshot reached the replica")
        assert replica.sources("harbour ferry timetable")[0] == "harbour.txt"
        texts = [str(h["text"]) for h in replica.search("observatory Fridays committee")]
        assert "observatory" in texts[0] and not any("zeppelin" in t for t in texts)
        assert "budget.txt" not in replica.sources("walrus project budget")

    # a change picked up by both within the poll bound
    (cluster.drive / "harbour.txt").write_text("The harbour ferry now also sails to the lighthouse island.\n")
    assert cluster.ingest().returncode == 0
    third = cluster.current()
    for replica in (one, two):
        seconds = _until(lambda r=replica: r.snapshot() == third, "the third snapshot reached the replica")
        assert seconds < PICKUP_BOUND
        assert replica.search("lighthouse island ferry")[0]["source"] == "harbour.txt"

    # a replica restarted with an empty cache serves the same results
    queries = ("harbour ferry", "committee observatory", "blue chart")
    before = [two.sources(q) for q in queries]
    two.stop()
    fresh = cluster.replica("cache-three")
    assert fresh.snapshot() == third
    assert [fresh.sources(q) for q in queries] == before
    assert [one.sources(q) for q in queries] == before


def _doctor(cluster: Cluster, index: Path, *extra: str, replica: bool = False) -> tuple[int, dict[str, object], str]:
    env = {**cluster.env, "MMRAG_ROLE": "replica"} if replica else cluster.env
    command = ["doctor", "--index", str(index), "--config", str(cluster.config), "--json", *extra]
    done = subprocess.run(
        [sys.executable, "-m", "mmrag.pipeline.cli", *command], env=env, capture_output=True, text=True, timeout=300
    )
    report: dict[str, object] = json.loads(done.stdout) if done.stdout.strip() else {}
    return done.returncode, report, done.stderr


def _checks(report: dict[str, object]) -> dict[str, dict[str, object]]:
    checks = report["checks"]
    assert isinstance(checks, list)
    return {str(c["check"]): c for c in checks}


def test_the_doctor_sees_unpublished_changes_on_the_ingest_node_and_what_a_replica_serves(cluster: Cluster) -> None:
    node = cluster.tmp / "ingest-node"
    assert cluster.ingest().returncode == 0
    first = cluster.current()
    code, report, _ = _doctor(cluster, node)
    assert code == 0, report
    assert first in str(_checks(report)["snapshot published"]["detail"])

    # a replica's doctor opens the live store with the current snapshot (a private copy: its cache stays
    # empty) and does not check the parts against each other (its snapshot lags the vectors by design)
    cache = cluster.tmp / "cache-doctor"
    code, report, _ = _doctor(cluster, cache, replica=True)
    assert code == 0, report
    checks = _checks(report)
    assert set(checks) == {"store opens", "snapshot published"}
    assert first in str(checks["store opens"]["detail"]) and "does not hold it yet" in str(
        checks["snapshot published"]["detail"]
    )
    assert not cache.exists() or not any(cache.iterdir())
    code, _, stderr = _doctor(cluster, cache, "--repair", replica=True)
    assert code == 2 and "ingest node" in stderr

    # an ingest killed before it could publish: the ingest node's doctor says so, --repair publishes
    (cluster.drive / "harbour.txt").write_text("The harbour ferry timetable changes in April.\n")
    assert cluster.ingest(fault="publish-before-current").returncode == 137
    code, report, _ = _doctor(cluster, node)
    assert code == 1
    failed = _checks(report)["snapshot published"]
    assert failed["ok"] is False and "cut short" in str(failed["detail"]) and "--repair" in str(failed["remedy"])
    code, report, _ = _doctor(cluster, node, "--repair")
    assert code == 0, report
    assert cluster.current() != first and any("published snapshot" in str(r) for r in report["repairs"])  # type: ignore[union-attr]
    replica = cluster.replica("cache-after-repair")
    assert replica.snapshot() == cluster.current()
    assert replica.sources("harbour ferry timetable")[0] == "harbour.txt"
