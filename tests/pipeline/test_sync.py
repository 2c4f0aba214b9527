"""Sync semantics shared by every source, shown on folders and on a named local source: renames and
moves are metadata updates (nothing embedded again), unchanged items are skipped on their version
token before a byte is read, an item that cannot be read is kept as it was and retried, and a source
that cannot be listed changes nothing."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

from fakes import CountingEmbedder

from mmrag.pipeline.api import ask, ingest, search
from mmrag.pipeline.config import Config, SourceConfig, load_config
from mmrag.pipeline.sources import Item, SourceError
from mmrag.pipeline.sources.local import LocalSource


def _drive(root: Path) -> Path:
    (root / "finance").mkdir(parents=True)
    (root / "notes").mkdir()
    (root / "finance" / "budget.txt").write_text("The travel budget for 2025 is 48,000 euros, approved in March.\n")
    (root / "notes" / "plan.md").write_text("# Roadmap\n\n## Q4\n\nShip the quantum widget by December.\n")
    (root / "finance" / "teams.csv").write_text("team,players\nOtters,11\nHerons,7\nBadgers,9\n")
    return root


def _sources(hits: list) -> set[str]:  # type: ignore[type-arg]
    return {h.chunk.source for h in hits}


def test_a_renamed_or_moved_file_is_not_embedded_again(tmp_path: Path, cfg: Config) -> None:
    drive = _drive(tmp_path / "drive")
    embedder = CountingEmbedder()
    ingest([drive], cfg, embedder=embedder)
    embedder.texts = 0
    (drive / "notes" / "plan.md").rename(drive / "notes" / "roadmap.md")
    (drive / "archive").mkdir()
    shutil.move(drive / "finance" / "teams.csv", drive / "archive" / "teams-2025.csv")

    report = ingest([drive], cfg, embedder=embedder)

    assert sorted(report.moved) == ["finance/teams.csv -> archive/teams-2025.csv", "notes/plan.md -> notes/roadmap.md"]
    assert report.ingested == [] and report.removed == [] and embedder.texts == 0
    found = _sources(search("quantum widget roadmap", cfg, k=5, embedder=embedder))
    assert "notes/roadmap.md" in found and "notes/plan.md" not in found
    # the table moved with its file: SQL still answers, citing the new name
    answer = ask("Which team has the most players?", cfg, embedder=embedder)
    assert "Otters" in answer.text and any(c.hit.chunk.source == "archive/teams-2025.csv" for c in answer.citations)
    embedder.texts = 0
    again = ingest([drive], cfg, embedder=embedder)
    assert again.moved == [] and again.unchanged == 3 and embedder.texts == 0
    assert report.by_source[str(drive.resolve())]["moved"] == 2


def test_a_copy_is_ingested_and_a_rename_with_new_content_is_a_new_file(tmp_path: Path, cfg: Config) -> None:
    drive = _drive(tmp_path / "drive")
    embedder = CountingEmbedder()
    ingest([drive], cfg, embedder=embedder)
    shutil.copy(drive / "notes" / "plan.md", drive / "notes" / "copy.md")  # the original stays: not a move
    (drive / "finance" / "budget.txt").rename(drive / "finance" / "budget-2026.txt")
    (drive / "finance" / "budget-2026.txt").write_text("The travel budget for 2026 is 51,000 euros.\n")

    report = ingest([drive], cfg, embedder=embedder)

    assert report.moved == []
    assert sorted(report.ingested) == ["finance/budget-2026.txt", "notes/copy.md"]
    assert report.removed == ["finance/budget.txt"]


class _Counting(LocalSource):
    """The local source, counting the items it hands over and failing those named in ``broken``."""

    def __init__(self, config: SourceConfig) -> None:
        super().__init__(config)
        self.fetched: list[str] = []
        self.broken: set[str] = set()
        self.down = False

    def items(self) -> Iterator[Item]:
        if self.down:
            raise SourceError(f"source {self.name!r}: connection refused")
        return super().items()

    def fetch(self, item: Item, dest: Path) -> None:
        if item.path in self.broken:
            raise SourceError(f"source {self.name!r}: {item.path}: connection reset")
        self.fetched.append(item.path)
        super().fetch(item, dest)


def _named(tmp_path: Path, drive: Path) -> Config:
    config = tmp_path / "mmrag.toml"
    config.write_text(f'[sources.team]\nkind = "local"\nurl = "{drive}"\n')
    return load_config(config_file=config, index_dir=tmp_path / "index", env={})


def test_a_named_source_is_ingested_by_name_and_synced(tmp_path: Path) -> None:
    drive = _drive(tmp_path / "drive")
    cfg = _named(tmp_path, drive)
    embedder = CountingEmbedder()

    first = ingest(["team"], cfg, embedder=embedder)

    assert sorted(first.ingested) == ["team:/finance/budget.txt", "team:/finance/teams.csv", "team:/notes/plan.md"]
    assert first.by_source["team"]["listed"] == 3 and first.by_source["team"]["ingested"] == 3
    hit = search("quantum widget", cfg, k=1, embedder=embedder)[0]
    assert hit.chunk.source == "team:/notes/plan.md" and hit.root == str(drive.resolve())

    (drive / "notes" / "plan.md").unlink()
    (drive / "notes" / "new.txt").write_text("The cafeteria opens at 7:45.\n")
    second = ingest(["team"], cfg, embedder=embedder)
    assert second.ingested == ["team:/notes/new.txt"] and second.removed == ["team:/notes/plan.md"]
    assert second.unchanged == 2


def test_unchanged_items_are_not_read_and_failures_are_kept_and_retried(tmp_path: Path) -> None:
    drive = _drive(tmp_path / "drive")
    cfg = _named(tmp_path, drive)
    source_config = cfg.source("team")
    assert source_config is not None
    source = _Counting(source_config)
    embedder = CountingEmbedder()
    ingest([source], cfg, embedder=embedder)
    assert len(source.fetched) == 3

    source.fetched.clear()
    quiet = ingest([source], cfg, embedder=embedder)
    assert source.fetched == [] and quiet.unchanged == 3  # the version token says so: not a byte read

    (drive / "finance" / "budget.txt").write_text("The travel budget for 2026 is 51,000 euros.\n")
    source.broken = {"finance/budget.txt"}
    failed = ingest([source], cfg, embedder=embedder)
    assert [f.file for f in failed.failed] == ["team:/finance/budget.txt"]
    assert "connection reset" in failed.failed[0].reason and failed.removed == []
    kept = search("travel budget euros", cfg, k=3, embedder=embedder)
    assert any("48,000" in h.chunk.text for h in kept)  # the old version stays until the new one is read

    source.broken = set()
    retried = ingest([source], cfg, embedder=embedder)
    assert retried.ingested == ["team:/finance/budget.txt"] and retried.failed == []
    assert any("51,000" in h.chunk.text for h in search("travel budget euros", cfg, k=3, embedder=embedder))


def test_a_source_that_cannot_be_listed_changes_nothing(tmp_path: Path) -> None:
    drive = _drive(tmp_path / "drive")
    cfg = _named(tmp_path, drive)
    source_config = cfg.source("team")
    assert source_config is not None
    source = _Counting(source_config)
    embedder = CountingEmbedder()
    ingest([source], cfg, embedder=embedder)

    source.down = True
    report = ingest([source], cfg, embedder=embedder)

    assert report.removed == [] and report.ingested == []
    assert [f.file for f in report.failed] == ["team"] and "could not list" in report.failed[0].reason
    assert "team:/notes/plan.md" in _sources(search("quantum widget", cfg, k=3, embedder=embedder))


def test_a_source_that_stops_answering_is_given_up_without_removing_anything(tmp_path: Path) -> None:
    drive = tmp_path / "drive"
    drive.mkdir()
    for n in range(8):
        (drive / f"note-{n}.txt").write_text(f"Note number {n} mentions the word zebra{n}.\n")
    cfg = _named(tmp_path, drive)
    source_config = cfg.source("team")
    assert source_config is not None
    source = _Counting(source_config)
    embedder = CountingEmbedder()
    ingest([source], cfg, embedder=embedder)
    for n in range(8):
        (drive / f"note-{n}.txt").write_text(f"Note number {n} now mentions the word yak{n}.\n")
    source.broken = {f"note-{n}.txt" for n in range(8)}

    report = ingest([source], cfg, embedder=embedder)

    assert len(report.failed) == 6 and "not tried" in report.failed[-1].reason  # 5 tries, then the rest at once
    assert report.removed == [] and report.ingested == []
    assert "team:/note-7.txt" in _sources(search("zebra7", cfg, k=3, embedder=embedder))


def test_a_renamed_item_that_cannot_be_read_keeps_its_old_name_until_it_is(tmp_path: Path) -> None:
    drive = _drive(tmp_path / "drive")
    cfg = _named(tmp_path, drive)
    source_config = cfg.source("team")
    assert source_config is not None
    source = _Counting(source_config)
    embedder = CountingEmbedder()
    ingest([source], cfg, embedder=embedder)
    (drive / "notes" / "plan.md").rename(drive / "notes" / "roadmap.md")
    (drive / "finance" / "budget.txt").unlink()
    source.broken = {"notes/roadmap.md"}  # its bytes cannot be read now: it may be plan.md renamed

    report = ingest([source], cfg, embedder=embedder)

    assert [f.file for f in report.failed] == ["team:/notes/roadmap.md"] and report.removed == []
    assert "team:/notes/plan.md" in _sources(search("quantum widget", cfg, k=3, embedder=embedder))
    source.broken = set()
    embedder.texts = 0
    later = ingest([source], cfg, embedder=embedder)
    assert later.moved == ["team:/notes/plan.md -> team:/notes/roadmap.md"] and embedder.texts == 0
    assert later.removed == ["team:/finance/budget.txt"]
