from __future__ import annotations

import itertools

from mmrag.ingest.base import ChunkingConfig
from mmrag.ingest.text.textsplit import overlap_tail, pack_blocks, split_long_block

SMALL = ChunkingConfig(target_chars=100, max_chars=160, overlap_chars=30)


def _sentences(n: int, words: int = 6) -> str:
    return " ".join(f"Sentence {i} has " + " ".join(["word"] * (words - 3)) + "." for i in range(n))


def test_small_blocks_are_packed_whole_and_in_order() -> None:
    blocks = [f"Paragraph {i} is short." for i in range(12)]
    chunks = pack_blocks(blocks, SMALL)
    assert len(chunks) > 1
    assert all(len(c) <= SMALL.max_chars for c in chunks)
    # Every block survives whole, exactly once, in order: no cut, no overlap between whole blocks.
    assert "\n\n".join(chunks).split("\n\n") == blocks


def test_chunks_aim_at_the_target_size() -> None:
    chunks = pack_blocks([f"Block number {i:03d} here." for i in range(100)], SMALL)
    assert all(70 <= len(c) <= SMALL.target_chars for c in chunks[:-1])


def test_empty_input_gives_no_chunks() -> None:
    assert pack_blocks([], SMALL) == []
    assert pack_blocks(["", "   ", "\n"], SMALL) == []


def test_a_long_block_is_cut_at_sentence_ends_with_overlap() -> None:
    text = _sentences(12)
    chunks = pack_blocks([text], SMALL)
    assert len(chunks) > 2
    assert all(len(c) <= SMALL.max_chars for c in chunks)
    assert all(c.endswith(".") for c in chunks)  # cut at sentence ends
    for before, after in itertools.pairwise(chunks):
        tail = overlap_tail(before, SMALL.overlap_chars)
        assert tail and after.startswith(tail)  # the next piece repeats the end of the previous one
    for i in range(12):
        assert any(f"Sentence {i} has" in c for c in chunks)


def test_overlap_only_where_a_block_was_split() -> None:
    long_block = _sentences(8)
    chunks = pack_blocks(["Intro paragraph.", long_block, "Closing paragraph."], SMALL)
    assert chunks[0] == "Intro paragraph."
    assert sum(c.count("Intro paragraph.") for c in chunks) == 1
    assert sum(c.count("Closing paragraph.") for c in chunks) == 1


def test_a_sentence_without_ends_is_cut_between_words() -> None:
    text = " ".join(f"w{i:03d}" for i in range(200))  # 999 characters, no punctuation
    chunks = pack_blocks([text], SMALL)
    assert all(len(c) <= SMALL.max_chars for c in chunks)
    words = {w for c in chunks for w in c.split()}
    assert words == set(text.split())
    assert all(not w.startswith("w") or len(w) == 4 for c in chunks for w in c.split())  # no word is cut


def test_a_word_longer_than_the_maximum_is_cut_anywhere() -> None:
    blob = "x" * 500
    chunks = pack_blocks([blob], SMALL)
    assert all(len(c) <= SMALL.max_chars for c in chunks)
    assert "".join(chunks).replace(" ", "").count("x") >= 500


def test_reserved_space_keeps_prefix_plus_chunk_under_the_maximum() -> None:
    prefix = "Handbook > Chapter 2 > Costs\n\n"
    chunks = pack_blocks([_sentences(20)], SMALL, reserved=len(prefix))
    assert all(len(prefix + c) <= SMALL.max_chars for c in chunks)


def test_lines_joined_with_the_given_separator() -> None:
    assert pack_blocks(["line one", "line two"], SMALL, separator="\n") == ["line one\nline two"]


def test_a_small_tail_joins_the_previous_chunk() -> None:
    # 107 characters together: over the target, but a 10-character chunk on its own is worse.
    assert pack_blocks(["a" * 95, "b" * 10], SMALL) == ["a" * 95 + "\n\n" + "b" * 10]
    assert pack_blocks(["a" * 95, "b" * 40], SMALL) == ["a" * 95, "b" * 40]


def test_a_small_chunk_takes_a_big_next_block_rather_than_stand_alone() -> None:
    assert pack_blocks(["Title line", "b" * 140], SMALL) == ["Title line\n\n" + "b" * 140]


def test_split_long_block_always_makes_progress() -> None:
    pieces = split_long_block(_sentences(30), target=50, hard=60, overlap=40)
    assert all(len(p) <= 60 for p in pieces)
    for i in range(30):
        assert any(f"Sentence {i} has" in p for p in pieces)


def test_overlap_tail_prefers_whole_sentences_then_words() -> None:
    assert overlap_tail("First one. Second one. Third.", 20) == "Second one. Third."
    assert overlap_tail("alpha beta gamma delta", 12) == "gamma delta"
    assert overlap_tail("short", 30) == "short"
    assert overlap_tail("anything", 0) == ""
