"""Plain words for photo labels: a reader of WordNet's data.noun, on a tiny generated database and on
Debian's wordnet-base when it is installed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fakes import FakeLabeler

from mmrag.ingest.engines.wordnet import DEFAULT_DIR, WordNet, kinds_of, parse_line, plain_words, wordnet_at

# (key, lex_file, words, hypernym keys); words as WordNet writes them, with their lex_id
TINY = [
    ("entity", 3, ["entity"], []),
    ("object", 3, ["object", "physical_object"], ["entity"]),
    ("organism", 3, ["organism", "being"], ["object"]),
    ("animal", 3, ["animal", "animate_being", "beast"], ["organism"]),
    ("mammal", 5, ["mammal", "mammalian"], ["animal"]),
    ("carnivore", 5, ["carnivore"], ["mammal"]),
    ("feline", 5, ["feline", "felid"], ["carnivore"]),
    ("cat", 5, ["cat", "true_cat"], ["feline"]),
    ("domestic_cat", 5, ["domestic_cat", "house_cat", "Felis_catus"], ["cat"]),
    ("tabby", 5, ["tabby", "tabby_cat"], ["domestic_cat"]),
]
COUNTS = {"animal%1:03:00": 67, "mammal%1:05:00": 3, "cat%1:05:00": 18, "house_cat%1:05:01": 4, "beast%1:03:02": 1}


def write_wordnet(folder: Path) -> dict[str, int]:
    """A data.noun in WordNet's format (a synset's offset is the byte where its line starts), and cntlist.rev."""
    header = "  1 This software and database is being provided to you, the LICENSEE, by Princeton University\n"
    offsets: dict[str, int] = {}
    position = len(header)
    for key, lex_file, words, hypernyms in TINY:  # lines have a fixed length whatever the offsets: two passes
        offsets[key] = position
        position += len(_line(0, lex_file, words, [0] * len(hypernyms)))
    body = "".join(_line(offsets[k], f, w, [offsets[h] for h in hs]) for k, f, w, hs in TINY)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data.noun").write_text(header + body, encoding="utf-8")
    (folder / "cntlist.rev").write_text("".join(f"{key}:: 1 {n}\n" for key, n in COUNTS.items()))
    return offsets


def _line(offset: int, lex_file: int, words: list[str], hypernyms: list[int]) -> str:
    lemmas = " ".join(f"{word} {i:x}" for i, word in enumerate(words))
    pointers = "".join(f" @ {h:08d} n 0000" for h in hypernyms)
    return f"{offset:08d} {lex_file:02d} n {len(words):02x} {lemmas} {len(hypernyms):03d}{pointers} | a gloss; with words\n"


def test_a_line_of_data_noun() -> None:
    line = "02123045 05 n 02 tabby 1 tabby_cat 0 002 @ 02121808 n 0000 ~ 02123000 n 0000 | a cat with a grey coat"
    synset = parse_line(line)
    assert synset.offset == 2123045 and synset.lex_file == 5
    assert synset.words == (("tabby", 1), ("tabby cat", 0))
    assert synset.hypernyms == (2121808,)  # the hyponym pointer (~) is not followed


def test_kinds_are_near_levels_then_everyday_words_below_the_abstract_top(tmp_path: Path) -> None:
    offsets = write_wordnet(tmp_path / "wordnet")
    database = WordNet(tmp_path / "wordnet")
    tabby = f"n{offsets['tabby']:08d}"
    # three levels up always (with an everyday synonym), then only words in everyday use; never organism and above
    assert kinds_of(database, tabby) == ["domestic cat", "house cat", "cat", "feline", "mammal", "animal"]
    assert kinds_of(database, f"n{offsets['animal']:08d}") == []
    assert kinds_of(database, "n00000007") == [] and kinds_of(database, "tabby") == []  # not a synset
    assert plain_words(database, [tabby, f"n{offsets['feline']:08d}"], limit=4) == [
        "domestic cat",
        "carnivore",
        "house cat",
        "mammal",
    ]


def test_no_database_no_kinds(tmp_path: Path) -> None:
    assert wordnet_at("") is None
    assert wordnet_at(tmp_path / "missing") is None
    assert plain_words(None, ["n02123045"]) == []


def installed_wordnet() -> WordNet:
    found = wordnet_at(DEFAULT_DIR)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"WordNet is not installed at {DEFAULT_DIR}: ./bootstrap.sh test installs wordnet-base")
        pytest.skip(f"WordNet is not installed at {DEFAULT_DIR} (apt-get install wordnet-base)")
    return found


def test_a_tabby_is_a_cat_and_an_animal() -> None:
    kinds = kinds_of(installed_wordnet(), "n02123045")  # ImageNet's "tabby, tabby cat"
    assert "cat" in kinds and "animal" in kinds
    assert not {"entity", "object", "whole", "organism", "living thing"} & set(kinds)
    assert {"car", "vehicle"} <= set(kinds_of(installed_wordnet(), "n04285008"))  # "sports car"


def test_a_photo_labelled_tabby_is_described_in_plain_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image

    from mmrag.ingest.base import IngestSettings, MediaConfig
    from mmrag.ingest.formats import images as images_module
    from mmrag.ingest.formats.images import ImagesIngestor

    installed_wordnet()
    if not images_module.imagenet_classes():
        pytest.skip("timm (the ImageNet class list) is not installed")
    monkeypatch.setattr(images_module, "image_labeler", FakeLabeler)
    path = tmp_path / "IMG_0412.jpg"
    Image.new("RGB", (64, 48), (120, 100, 80)).save(path)
    settings = IngestSettings(media=MediaConfig(ocr_engine="", wordnet_dir=str(DEFAULT_DIR)))
    (chunk,) = ImagesIngestor(settings).ingest(path, path.name)
    looks = next(line for line in chunk.text.splitlines() if line.startswith("Looks like: "))
    words = looks.removeprefix("Looks like: ").split(", ")
    assert words[:2] == ["tabby cat", "tiger cat"] and "cat" in words and "animal" in words
