"""The readers rules file: globs to readers, first match wins, replacing what the file system says;
a change of rules re-labels files on the next ingest without embedding anything again."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from fakes import CountingEmbedder

from mmrag.ingest.reader_rules import ReaderRules, RulesError, glob_pattern
from mmrag.pipeline.api import Filters, ingest, search
from mmrag.pipeline.config import Config, PermissionsConfig


def _rules(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "readers.toml"
    path.write_text(text)
    return path


def test_globs_match_within_and_across_folders() -> None:
    assert glob_pattern("hr/*.pdf").fullmatch("hr/pay.pdf")
    assert not glob_pattern("hr/*.pdf").fullmatch("hr/2024/pay.pdf")
    assert glob_pattern("hr/**").fullmatch("hr/2024/q1/pay.pdf")
    assert glob_pattern("**/drafts/**").fullmatch("drafts/a.txt")
    assert glob_pattern("**/drafts/**").fullmatch("team/x/drafts/a.txt")
    assert not glob_pattern("**/drafts/**").fullmatch("team/drafts-old/a.txt")
    assert glob_pattern("report-202?.xlsx").fullmatch("report-2024.xlsx")


def test_the_first_matching_rule_decides_and_names_inside_a_source_match_too(tmp_path: Path) -> None:
    rules = ReaderRules.load(_rules(tmp_path, """
[[rule]]
match = "hr/secret/**"
readers = []
[[rule]]
match = "hr/**"
readers = ["group:hr", "user:ceo", "!user:intern"]
[[rule]]
match = "finance:/**"
readers = ["group:finance"]
"""))
    assert rules.readers_for("hr/secret/a.pdf") == ()
    assert rules.readers_for("hr/pay.xlsx") == ("!user:intern", "group:hr", "user:ceo")
    assert rules.readers_for("finance:/q3.pdf") == ("group:finance",)
    assert rules.readers_for("shared:/hr/pay.xlsx") == ("!user:intern", "group:hr", "user:ceo")  # the path inside
    assert rules.readers_for("notes/plan.md") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[rule]]\nmatch = "hr/**"\nreaders = ["hr"]\n', "rule 1: 'hr' is not a reader"),
        ('[[rule]]\nmatch = "hr/**"\n', "rule 1: a rule has exactly match"),
        ('[[rule]]\nmatch = ""\nreaders = []\n', "rule 1: match must be a glob"),
        ("[rules]\n", "unknown setting 'rules'"),
        ("[[rule]\n", "not valid TOML"),
    ],
)
def test_a_bad_rules_file_is_refused_naming_the_file_and_rule(tmp_path: Path, text: str, message: str) -> None:
    path = _rules(tmp_path, text)
    with pytest.raises(RulesError, match=message) as caught:
        ReaderRules.load(path)
    assert str(path) in str(caught.value)


def test_rules_replace_the_file_systems_readers_and_a_change_re_labels_without_embedding(
    tmp_path: Path, cfg: Config
) -> None:
    drive = tmp_path / "drive"
    (drive / "hr").mkdir(parents=True)
    (drive / "hr" / "salaries.txt").write_text("The salary band for engineers tops out at 140,000.\n")
    (drive / "notes.txt").write_text("The salary survey closes on Friday.\n")
    # the test's folders are the owner's only (pytest's 0700 temporary folders): the rules say otherwise
    catch_all = '[[rule]]\nmatch = "**"\nreaders = ["PUBLIC"]\n'
    rules = _rules(tmp_path, '[[rule]]\nmatch = "hr/**"\nreaders = ["group:hr"]\n' + catch_all)
    cfg = replace(cfg, permissions=PermissionsConfig(enabled=True, rules_file=str(rules)))
    embedder = CountingEmbedder()
    ingest([drive], cfg, embedder=embedder)

    def seen(*principals: str) -> set[str]:
        hits = search("salary", cfg, k=10, filters=Filters(principals=frozenset(principals)), embedder=embedder)
        return {h.chunk.source for h in hits}

    assert seen("user:alice", "PUBLIC") == {"notes.txt"}
    assert seen("user:bob", "group:hr", "PUBLIC") == {"notes.txt", "hr/salaries.txt"}

    rules.write_text('[[rule]]\nmatch = "hr/**"\nreaders = ["user:alice"]\n' + catch_all)
    embedder.texts = 0
    report = ingest([drive], cfg, embedder=embedder)
    assert report.permissions_changed == ["hr/salaries.txt"] and report.ingested == [] and embedder.texts == 0
    assert seen("user:alice", "PUBLIC") == {"notes.txt", "hr/salaries.txt"}
    assert seen("user:bob", "group:hr", "PUBLIC") == {"notes.txt"}
