"""A regular (non-editable) install carries every subpackage and every prompt file."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "ingest", "retrieval", "prompts")
SUFFIXES = (".py", ".md", ".txt", ".html", ".js", ".css")


@pytest.mark.slow
def test_wheel_carries_every_module_and_prompt(tmp_path: Path) -> None:
    # Build from a copy: setuptools writes a build/ folder next to the sources.
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns(".git", ".venv", ".typecheck", "build", "*.egg-info", "__pycache__", ".*_cache")
    shutil.copytree(REPO, src, ignore=ignore)
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)]
    subprocess.run([*build, str(src)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("mmrag-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        f"mmrag/{p.relative_to(REPO).as_posix()}"
        for package in PACKAGES
        for p in (REPO / package).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix in SUFFIXES
    }
    assert expected and expected <= names, sorted(expected - names)
    assert not any(n.startswith("mmrag/tests/") for n in names)

    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    probe = "import mmrag.pipeline.cli as c, sys; print(c.__file__)"
    out = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); {probe}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip().startswith(str(target))
