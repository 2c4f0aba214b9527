"""Generated inputs for ``mmrag bench``: chunk texts with realistic word statistics, random vectors,
queries, a folder of many small files, and a long video looped from a real one.

Texts are drawn from a fixed vocabulary of pronounceable made-up words with Zipf frequencies (a few
words are everywhere, most are rare), so the keyword index's posting lists and BM25 work look like
those of real prose. Vectors are random unit vectors: a vector search costs the same whatever the
vectors mean. Everything is seeded, so two runs build the same index.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from mmrag.ingest.chunk import Chunk, Locator, Modality, Page, Rows, TimeSpan
from mmrag.retrieval.store import EmbeddingLayout, FileInfo

VOCABULARY = 20_000
ZIPF_SHIFT = 2.7  # Zipf-Mandelbrot: p(rank) ~ 1 / (rank + shift)
WORDS_PER_CHUNK = (90, 160)  # about 700-1200 characters, the size ingest cuts text into
WORDS_PER_SENTENCE = (8, 20)
COMMON_WORDS = 60  # the most frequent words behave like stopwords; queries avoid them
_ONSETS = ("b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "br", "st", "tr", "pl")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ou")
_CODAS = ("", "n", "r", "s", "l", "t", "nd", "rk")

# The synthetic search indexes: bump SYNTH_VERSION when what they hold changes, so caches rebuild.
SYNTH_VERSION = 2  # 2: every file has readers (one of PERMISSION_GROUPS groups)
DIM = 384
CHUNKS_PER_FILE = 100
WRITE_CHUNKS = 2000
SYNTH_ROOT = "/synthetic-drive"
LAYOUT = EmbeddingLayout(text_model="mmrag-bench/random-unit-vectors", text_dim=DIM)
MODIFIED = 1_700_000_000.0
BUILT_MARKER = "built.json"
KEYWORD_FILE = "keyword.sqlite"
PERMISSION_GROUPS = 20  # file n is readable by group g(n mod 20): a person in k groups sees k/20 of the drive
VISIBLE_SHARES = (5, 50, 95)  # the shares of the drive the permission figures search as

Floats = npt.NDArray[np.float32]


def vocabulary(size: int = VOCABULARY, seed: int = 7) -> list[str]:
    """``size`` distinct made-up words, shortest first (frequent words are short, as in real language)."""
    rng = np.random.default_rng(seed)
    words: list[str] = []
    seen: set[str] = set()
    syllables = 1
    while len(words) < size:
        for _ in range(size * 4):
            word = (
                "".join(
                    _ONSETS[rng.integers(len(_ONSETS))] + _VOWELS[rng.integers(len(_VOWELS))] + _CODAS[rng.integers(4)]
                    for _ in range(syllables)
                )
                + _CODAS[rng.integers(len(_CODAS))]
            )
            if word not in seen:
                seen.add(word)
                words.append(word)
                if len(words) == size:
                    break
        syllables += 1
    return words


def zipf_weights(size: int) -> npt.NDArray[np.float64]:
    weights: npt.NDArray[np.float64] = 1.0 / (np.arange(size, dtype=np.float64) + ZIPF_SHIFT)
    return weights / float(weights.sum())


class TextSource:
    """Seeded generator of chunk texts: sentences of Zipf-distributed words, capitalised, with periods."""

    def __init__(self, seed: int = 11) -> None:
        self.words = vocabulary()
        self._cdf = np.cumsum(zipf_weights(len(self.words)))
        self._rng = np.random.default_rng(seed)

    def _draw(self, n: int) -> npt.NDArray[np.int64]:
        return np.minimum(np.searchsorted(self._cdf, self._rng.random(n)), len(self.words) - 1).astype(np.int64)

    def text(self) -> str:
        n = int(self._rng.integers(*WORDS_PER_CHUNK))
        ids = self._draw(n).tolist()
        sentences: list[str] = []
        at = 0
        while at < n:
            length = int(self._rng.integers(*WORDS_PER_SENTENCE))
            words = [self.words[i] for i in ids[at : at + length]]
            at += length
            sentences.append(" ".join(words).capitalize() + ".")
        return " ".join(sentences)

    def query(self) -> str:
        """3-6 words, none of the most common ones: what a person types into a search box."""
        n = int(self._rng.integers(3, 7))
        ids = [i for i in self._draw(n * 4).tolist() if i >= COMMON_WORDS][:n]
        return " ".join(self.words[i] for i in ids)


def unit_vectors(rng: np.random.Generator, n: int, dim: int) -> Floats:
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


@dataclass(frozen=True, slots=True)
class SyntheticFile:
    source: str
    chunks: tuple[Chunk, ...]
    principals: tuple[str, ...] = ()


def principals_seeing(percent: int) -> frozenset[str]:
    """Principals of someone who may read ``percent`` of the synthetic drive (a multiple of 100/groups)."""
    groups = round(PERMISSION_GROUPS * percent / 100)
    return frozenset(f"group:g{n:02d}" for n in range(groups))


def _locator(modality: Modality, j: int) -> Locator:
    if modality is Modality.TABLE:
        return Rows(j * 20 + 1, j * 20 + 20, "Sheet1")
    if modality is Modality.SPEECH:
        return TimeSpan(j * 45.0, j * 45.0 + 45.0)
    return Page(j + 1)


def synthetic_files(total_chunks: int, chunks_per_file: int, seed: int = 11) -> Iterator[SyntheticFile]:
    """Files of ``chunks_per_file`` chunks until ``total_chunks``: 80% text pages, 10% table rows, 10% speech."""
    texts = TextSource(seed)
    made = 0
    number = 0
    while made < total_chunks:
        count = min(chunks_per_file, total_chunks - made)
        modality = (Modality.TEXT,) * 8 + (Modality.TABLE, Modality.SPEECH)
        kind = modality[number % len(modality)]
        ext = {Modality.TEXT: "pdf", Modality.TABLE: "xlsx", Modality.SPEECH: "mp3"}[kind]
        source = f"synthetic/{number // 100:03d}/file_{number:06d}.{ext}"
        chunks = tuple(
            Chunk(source, kind, _locator(kind, j), texts.text(), title=f"Synthetic file {number}") for j in range(count)
        )
        yield SyntheticFile(source, chunks, (f"group:g{number % PERMISSION_GROUPS:02d}",))
        made += count
        number += 1


def tier_dir(cache: Path, size: int) -> Path:
    """One folder per size and per version of everything that shapes the stored index."""
    from mmrag.retrieval import keyword

    schema = getattr(keyword, "SCHEMA_VERSION", 1)
    return cache / f"search-{size}-v{SYNTH_VERSION}.{LAYOUT.version}.{schema}"


def progress(done: int, total: int, seconds: float, width: int = 30) -> str:
    """One line of a text progress bar with the time left at the rate so far (the build's log lines)."""
    share = done / total if total else 1.0
    left = seconds * (total - done) / done if done else 0.0
    bar = "#" * round(width * share)
    return (
        f"  [{bar:<{width}}] {done:,} of {total:,} chunks, {share:.0%}, {seconds:.0f} s, about {left / 60:.0f} min left"
    )


def build_index(path: Path, size: int, note: Callable[[str], None]) -> float:
    """Write ``size`` synthetic chunks into a new index folder; returns the seconds it took.

    Memory stays bounded whatever the size: texts are generated one file at a time, and vectors are
    drawn and written in batches of ``WRITE_CHUNKS`` per (kind, readers) pair (at most 60 pairs pending).
    """
    from mmrag.retrieval.keyword import KeywordIndex
    from mmrag.retrieval.stores.chroma import ChromaStore

    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    start = time.perf_counter()
    store = ChromaStore(path / "chroma", LAYOUT, create=True)
    KeywordIndex(path / KEYWORD_FILE).close()  # creates the table with the product's schema and version
    scratch = KeywordIndex(path / "scratch.sqlite")
    db = sqlite3.connect(path / KEYWORD_FILE, isolation_level=None)
    db.execute("ATTACH DATABASE ? AS scratch", (str(path / "scratch.sqlite"),))
    rng = np.random.default_rng(size)
    pending: dict[tuple[str, tuple[str, ...]], list[Chunk]] = {}  # one FileInfo each: vectors go in big batches
    written = 0
    copied = 0  # keyword rows copied so far (each file's scratch rows are numbered from 1 again)

    def flush(key: tuple[str, tuple[str, ...]]) -> None:
        nonlocal written
        chunks = pending.pop(key, [])
        if chunks:
            info = FileInfo(SYNTH_ROOT, key[0], MODIFIED, key[1])
            store.upsert(chunks, unit_vectors(rng, len(chunks), DIM), info)
            written += len(chunks)
            if written % 20_000 < len(chunks):
                note(progress(written, size, time.perf_counter() - start))

    for file in synthetic_files(size, CHUNKS_PER_FILE):
        kind = file.source.rsplit(".", 1)[1]
        scratch.clear()
        scratch.upsert(file.chunks, FileInfo(SYNTH_ROOT, kind, MODIFIED, file.principals))
        # the rows keep their order, shifted past the rows already copied, so their readers can follow them
        first = db.execute("SELECT min(rowid) FROM scratch.chunk_text").fetchone()[0]
        shift = copied + 1 - int(first)
        db.execute(
            "INSERT INTO main.chunk_text(rowid, text, title, tags, record_id, root, source, modality, kind, "
            "modified, meta) SELECT rowid + ?, * FROM scratch.chunk_text",
            (shift,),
        )
        db.execute(
            "INSERT INTO main.chunk_principal(principal, rowid) SELECT principal, rowid + ? FROM scratch.chunk_principal",
            (shift,),
        )
        copied += len(file.chunks)
        key = (kind, file.principals)
        pending.setdefault(key, []).extend(file.chunks)
        if len(pending[key]) >= WRITE_CHUNKS:
            flush(key)
    for key in list(pending):
        flush(key)
    db.execute("DETACH DATABASE scratch")
    db.close()
    scratch.close()
    keywords = KeywordIndex(path / KEYWORD_FILE)
    keywords.rebuild_file_map()  # the bulk copy above bypassed the file map
    keywords.close()
    for suffix in ("", "-wal", "-shm"):
        (path / f"scratch.sqlite{suffix}").unlink(missing_ok=True)
    seconds = time.perf_counter() - start
    (path / BUILT_MARKER).write_text(json.dumps({"size": size, "build_s": seconds}))
    return seconds


def write_small_files(folder: Path, count: int, seed: int = 5) -> None:
    """``count`` small text files (a few sentences each) in 20 subfolders, for the re-ingest figure."""
    texts = TextSource(seed)
    for i in range(count):
        path = folder / f"team_{i % 20:02d}" / f"note_{i:05d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"Note {i}\n\n{texts.text()}\n", encoding="utf-8")


def media_seconds(path: Path) -> float:
    """A recording's duration from its container (PyAV), 0.0 when it cannot be read."""
    import av

    try:
        with av.open(str(path)) as container:
            if container.duration:
                return float(container.duration) / float(av.time_base)
            longest = 0.0
            for stream in container.streams:
                if stream.duration and stream.time_base:
                    longest = max(longest, float(stream.duration * stream.time_base))
            return longest
    except (av.FFmpegError, OSError, ValueError):
        return 0.0


def loop_video(source: Path, target: Path, min_seconds: float) -> float:
    """Remux ``source`` end to end into ``target`` until it lasts ``min_seconds`` (no re-encoding).

    Returns the new duration. Packets keep their codec data; only their timestamps move (each stream
    continues where its previous loop ended), so the result decodes like one long recording.
    """
    import av

    length = media_seconds(source)
    if length <= 0:
        raise ValueError(f"cannot read the duration of {source}")
    loops = max(1, int(np.ceil(min_seconds / length)))
    offsets: dict[int, int] = {}
    with av.open(str(target), "w") as out:
        out_streams = {}
        with av.open(str(source)) as first:
            for stream in first.streams:
                if stream.type in ("video", "audio"):
                    out_streams[stream.index] = out.add_stream_from_template(stream)
                    offsets[stream.index] = 0
        for _ in range(loops):
            first_dts: dict[int, int] = {}
            end: dict[int, int] = {}
            with av.open(str(source)) as container:
                for packet in container.demux([s for s in container.streams if s.index in out_streams]):
                    if packet.dts is None or packet.pts is None:
                        continue
                    index = packet.stream.index
                    first_dts.setdefault(index, packet.dts)
                    end[index] = max(end.get(index, 0), packet.dts + (packet.duration or 0))
                    shift = offsets[index] - first_dts[index] if offsets[index] else 0
                    packet.pts += shift
                    packet.dts += shift
                    packet.stream = out_streams[index]
                    out.mux(packet)
            for index, last in end.items():
                offsets[index] += last - first_dts[index] if offsets[index] else last
    return media_seconds(target)
