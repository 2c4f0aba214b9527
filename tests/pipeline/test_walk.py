from __future__ import annotations

import os
from pathlib import Path

from mmrag.pipeline.walk import target_for, walk


def test_walk_skips_hidden_and_system_files_and_survives_symlink_loops(tmp_path: Path) -> None:
    root = tmp_path / "drive"
    (root / "finance").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "finance" / "q3.pdf").write_bytes(b"%PDF-1.4")
    (root / "finance" / "~$q3.docx").write_bytes(b"lock")
    (root / ".git" / "config").write_text("x")
    (root / "Thumbs.db").write_bytes(b"x")
    (root / "notes.txt").write_text("x")
    os.symlink(root, root / "finance" / "loop")  # a link back to the root
    sources = [f.source for f in walk(target_for(root))]
    assert sorted(sources) == ["finance/q3.pdf", "notes.txt"]


def test_single_file_target(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_text("x")
    target = target_for(f)
    assert not target.is_folder
    assert [x.source for x in walk(target)] == ["a.txt"]
