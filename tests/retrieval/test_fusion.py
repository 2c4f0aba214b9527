from __future__ import annotations

from mmrag.retrieval.fusion import reciprocal_rank_fusion


def test_item_ranked_well_in_both_lists_wins() -> None:
    fused = reciprocal_rank_fusion({"vector": ["a", "b", "c"], "keyword": ["b", "d"]})
    assert [f.key for f in fused] == ["b", "a", "d", "c"]
    assert dict(fused[0].ranks) == {"vector": 2, "keyword": 1}


def test_raw_scores_do_not_matter_only_ranks() -> None:
    # two lists of equal length: the first of each list ties; tie broken by key
    fused = reciprocal_rank_fusion({"x": ["a", "b"], "y": ["c", "d"]})
    assert [f.key for f in fused] == ["a", "c", "b", "d"]
    assert fused[0].score == fused[1].score


def test_weights_shift_the_balance() -> None:
    fused = reciprocal_rank_fusion({"x": ["a"], "y": ["b"]}, weights={"x": 1.0, "y": 2.0})
    assert fused[0].key == "b"


def test_duplicates_in_a_list_count_once() -> None:
    fused = reciprocal_rank_fusion({"x": ["a", "a", "b"]})
    assert [f.key for f in fused] == ["a", "b"]
    assert dict(fused[1].ranks) == {"x": 2}


def test_empty_input() -> None:
    assert reciprocal_rank_fusion({}) == []
