"""Plain words for what a photo shows: the WordNet hypernyms of its ImageNet labels.

ImageNet's labels are too specific for the words people search with ("tabby cat", "sports car");
their class ids (``n02123045``) are WordNet 3.0 noun offsets, and WordNet says what each is a kind
of: tabby -> domestic cat -> cat -> feline -> ... -> animal. ``kinds_of`` walks those hypernym
(``@``) pointers up: the first ``LEVELS`` levels always, farther ones only when they are everyday
words (tagged at least ``EVERYDAY_COUNT`` times in the SemCor corpus, from ``cntlist.rev``; so are
the synonyms added: "toy" next to "plaything"), and never into the abstract top of the hierarchy
(entity, object, whole, organism, artifact...).

The database is Debian's ``wordnet-base`` (``/usr/share/wordnet``): ``data.noun`` is read by byte
offset (a synset's offset is where its line starts), so nothing is parsed up front; the sense
counts are loaded once, on first use. No nltk, no download. Without the folder there are no kinds.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DIR = Path("/usr/share/wordnet")
LEVELS = 3
EVERYDAY_COUNT = 3
MAX_KINDS = 8
_MAX_DEPTH = 12
# The abstract top of WordNet's noun hierarchy: true of everything a photo shows, so they say nothing.
ABSTRACT = frozenset(
    {
        "entity", "physical entity", "abstraction", "abstract entity", "object", "physical object", "whole",
        "unit", "living thing", "animate thing", "organism", "being", "causal agent", "cause", "causal agency",
        "artifact", "artefact", "instrumentality", "instrumentation", "matter", "substance", "thing", "part",
        "portion", "piece", "group", "grouping", "collection", "attribute", "relation", "measure", "quantity",
        "psychological feature", "event", "act", "human action", "location", "natural object", "commodity",
        "trade good", "material", "stuff", "solid", "fluid", "body", "structure", "construction", "covering",
        "device", "equipment", "container", "implement", "way", "creation", "product", "production",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Synset:
    """One noun synset: its words (most common first, with their lexicographer ids) and hypernyms."""

    offset: int
    lex_file: int
    words: tuple[tuple[str, int], ...]  # (lemma as written, with spaces, lex_id)
    hypernyms: tuple[int, ...]

    @property
    def name(self) -> str:
        return self.words[0][0]


def parse_line(line: str) -> Synset:
    """A ``data.noun`` line: ``offset lex_filenum ss_type w_cnt word lex_id ... p_cnt ptr... | gloss``."""
    fields = line.split(" | ", 1)[0].split()
    offset, lex_file, count = int(fields[0]), int(fields[1]), int(fields[3], 16)
    words = tuple(
        (fields[4 + 2 * i].replace("_", " "), int(fields[5 + 2 * i], 16)) for i in range(count)
    )
    at = 4 + 2 * count
    pointers = int(fields[at])
    hypernyms = []
    for i in range(pointers):
        symbol, target, pos = fields[at + 1 + 4 * i : at + 4 + 4 * i]
        if symbol in ("@", "@i") and pos == "n":
            hypernyms.append(int(target))
    return Synset(offset, lex_file, words, tuple(hypernyms))


def _clean(lemma: str) -> str:
    """``cat`` from ``cat``, ``tabby cat``; adjective markers like ``(a)`` dropped."""
    return lemma.split("(")[0].strip()


class WordNet:
    """The noun part of a WordNet 3.0 database folder (``data.noun``, and ``cntlist.rev`` if present)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._synsets: dict[int, Synset | None] = {}
        self._counts: dict[str, int] | None = None

    @property
    def available(self) -> bool:
        return (self.folder / "data.noun").is_file()

    def synset(self, offset: int) -> Synset | None:
        """The synset at ``offset``, or None when there is none (a bad id, another database)."""
        with self._lock:
            if offset not in self._synsets:
                self._synsets[offset] = self._read(offset)
            return self._synsets[offset]

    def _read(self, offset: int) -> Synset | None:
        try:
            with (self.folder / "data.noun").open("rb") as handle:
                handle.seek(offset)
                line = handle.readline().decode("utf-8", "replace")
        except OSError:
            return None
        if not line.startswith(f"{offset:08d} "):
            return None
        try:
            return parse_line(line)
        except (ValueError, IndexError):
            return None

    def count(self, synset: Synset, word: int = 0) -> int:
        """How often the synset's ``word`` (its first: the most common) was tagged in SemCor (0 without
        ``cntlist.rev``)."""
        with self._lock:
            if self._counts is None:
                self._counts = self._load_counts()
            lemma, lex_id = synset.words[word]
            key = f"{lemma.replace(' ', '_').lower()}%1:{synset.lex_file:02d}:{lex_id:02d}::"
            return self._counts.get(key, 0)

    def _load_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        try:
            with (self.folder / "cntlist.rev").open(encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    parts = line.split()
                    if len(parts) == 3 and "%1:" in parts[0]:
                        counts[parts[0]] = counts.get(parts[0], 0) + int(parts[2])
        except (OSError, ValueError):
            pass
        return counts


def kinds_of(wordnet: WordNet, wnid: str) -> list[str]:
    """What the ImageNet class ``wnid`` (``n02123045``) is a kind of, nearest first, in everyday words."""
    if len(wnid) != 9 or wnid[0] != "n" or not wnid[1:].isdigit():
        return []
    start = wordnet.synset(int(wnid[1:]))
    if start is None:
        return []
    found: list[str] = []
    level, frontier, seen = 0, list(start.hypernyms), {start.offset}
    while frontier and level < _MAX_DEPTH:
        level += 1
        upper: list[int] = []
        for offset in frontier:
            synset = wordnet.synset(offset)
            if synset is None or offset in seen:
                continue
            seen.add(offset)
            name = _clean(synset.name)
            if name.lower() in ABSTRACT:
                continue  # and not above it: everything there is more abstract still
            if level <= LEVELS or wordnet.count(synset) >= EVERYDAY_COUNT:
                found.append(name)
                # a more everyday synonym too ("toy" next to "plaything", "automobile" next to "car")
                found.extend(
                    _clean(synset.words[i][0])
                    for i in range(1, len(synset.words))
                    if wordnet.count(synset, i) >= EVERYDAY_COUNT
                )
            upper.extend(synset.hypernyms)
        frontier = upper
    return list(dict.fromkeys(found))


def plain_words(wordnet: WordNet | None, wnids: Iterable[str], limit: int = MAX_KINDS) -> list[str]:
    """The kinds of every class in ``wnids``, nearest first, each word once, at most ``limit`` of them."""
    if wordnet is None or not wordnet.available:
        return []
    lists = [kinds_of(wordnet, wnid) for wnid in wnids]
    merged: list[str] = []
    for rank in range(max((len(k) for k in lists), default=0)):
        merged.extend(k[rank] for k in lists if rank < len(k))
    return list(dict.fromkeys(merged))[:limit]


_databases: dict[Path, WordNet] = {}
_databases_lock = threading.Lock()


def wordnet_at(folder: str | Path) -> WordNet | None:
    """The process-wide database in ``folder``, or None when ``folder`` is "" or holds no ``data.noun``."""
    if not folder:
        return None
    path = Path(folder)
    with _databases_lock:
        found = _databases.get(path)
        if found is None:
            found = _databases[path] = WordNet(path)
    return found if found.available else None
