"""Readers from POSIX modes and ACLs, level by level and along a path (the OS-user leak test is in
tests/pipeline/test_permissions_os.py; these need no accounts)."""

from __future__ import annotations

import os
import struct
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mmrag.ingest.permissions import (
    PUBLIC,
    PathReaders,
    Readers,
    group_name,
    intersect,
    level_readers,
    parse_acl,
    user_name,
    visible,
)

R, X = 4, 1
ROOT = user_name(0)
ROOT_GROUP = group_name(0)


def st(mode: int, uid: int = 0, gid: int = 0) -> Any:
    return SimpleNamespace(st_mode=0o100000 | mode, st_uid=uid, st_gid=gid)


def acl(*entries: tuple[int, int, int]) -> bytes:
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


def test_mode_bits_name_owner_group_and_everyone() -> None:
    assert level_readers(st(0o644), R) == Readers(frozenset({f"user:{ROOT}", f"group:{ROOT_GROUP}", PUBLIC}))
    assert level_readers(st(0o640), R) == Readers(frozenset({f"user:{ROOT}", f"group:{ROOT_GROUP}"}))
    assert level_readers(st(0o600), R).allow == {f"user:{ROOT}"}
    assert level_readers(st(0o711), X).allow == {f"user:{ROOT}", f"group:{ROOT_GROUP}", PUBLIC}
    assert level_readers(st(0o744), X).allow == {f"user:{ROOT}"}  # others may list the folder, not pass it


def test_a_class_without_read_is_denied_what_other_allows() -> None:
    readers = level_readers(st(0o604), R)
    assert PUBLIC in readers.allow and readers.deny == {f"group:{ROOT_GROUP}"}
    assert readers.principals() == (PUBLIC, f"user:{ROOT}", f"!group:{ROOT_GROUP}")
    owner_locked = level_readers(st(0o044), R)
    assert f"user:{ROOT}" in owner_locked.deny


def test_acl_entries_are_masked_and_named_users_and_groups_count() -> None:
    entries = acl(
        (0x01, 6, 0), (0x02, 4, 12345), (0x02, 4, 23456), (0x04, 4, 0), (0x08, 4, 34567), (0x10, 4, 0), (0x20, 0, 0)
    )
    readers = level_readers(st(0o640), R, parse_acl(entries))
    assert readers.allow == {f"user:{ROOT}", "user:uid12345", "user:uid23456", f"group:{ROOT_GROUP}", "group:gid34567"}
    masked = acl((0x01, 6, 0), (0x02, 4, 12345), (0x04, 4, 0), (0x10, 0, 0), (0x20, 0, 0))
    readers = level_readers(st(0o600), R, parse_acl(masked))
    assert readers.allow == {f"user:{ROOT}"} and "user:uid12345" in readers.deny  # the mask takes it away


def test_a_malformed_acl_is_ignored() -> None:
    assert parse_acl(b"") == [] and parse_acl(struct.pack("<I", 3) + b"\0" * 8) == [] and parse_acl(b"\2\0\0\0\1") == []


def test_levels_intersect_and_what_cannot_be_said_is_dropped() -> None:
    everyone = Readers(frozenset({PUBLIC}))
    fin = Readers(frozenset({"group:fin", "user:ann"}))
    hr = Readers(frozenset({"group:hr"}), frozenset({"user:bob"}))
    assert intersect(everyone, fin) == fin and intersect(fin, everyone) == fin
    both = intersect(fin, hr)
    assert both.allow == frozenset() and both.deny == {"user:bob", "user:ann"}  # fin AND hr: no one principal says it
    assert intersect(fin, Readers(frozenset({"group:fin"}))).allow == {"group:fin"}


def test_a_users_own_entry_is_asked_before_their_groups_as_posix_asks_the_owner_first() -> None:
    stored = ("PUBLIC", "user:ann", "!group:eng")  # mode 604, owner ann, group eng
    assert visible(stored, frozenset({"PUBLIC", "user:ann", "group:eng"}))  # the owner class decides for ann
    assert not visible(stored, frozenset({"PUBLIC", "user:cy", "group:eng"}))  # the group class for cy
    assert not visible(("PUBLIC", "group:eng", "!user:ann"), frozenset({"PUBLIC", "user:ann", "group:eng"}))


def test_each_named_user_is_decided_level_by_level() -> None:
    groups = {"ann": frozenset({"group:eng"}), "cy": frozenset({"group:eng"})}
    member_of = lambda name: groups.get(name, frozenset())  # noqa: E731
    file = Readers(frozenset({PUBLIC, "user:ann"}), frozenset({"group:eng"}))  # 604, owner ann, group eng
    open_folder = Readers(frozenset({PUBLIC}))
    closed_to_eng = Readers(frozenset({PUBLIC, "user:root"}), frozenset({"group:eng"}))  # 705, group eng
    assert intersect(file, open_folder, member_of).allow >= {"user:ann"}  # ann reads her own file
    below = intersect(file, closed_to_eng, member_of)  # but not through a folder her group may not pass
    assert "user:ann" in below.deny and "user:ann" not in below.allow
    assert not visible(below.principals(), frozenset({PUBLIC, "user:ann", "group:eng"}))
    assert visible(below.principals(), frozenset({PUBLIC, "user:bo"}))


def test_visible_needs_one_allowed_and_none_denied() -> None:
    stored = ("PUBLIC", "!group:eng")
    assert visible(stored, frozenset({"PUBLIC", "user:bob", "group:hr"}))
    assert not visible(stored, frozenset({"PUBLIC", "user:ann", "group:eng"}))
    assert not visible(("group:fin",), frozenset({"PUBLIC"}))
    assert not visible((), frozenset({"PUBLIC"}))


def test_a_path_needs_execute_on_every_folder_above(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the files are made root's to know the names; run as root (CI does)")
    tmp_path.chmod(0o755)
    folder = tmp_path / "closed"
    folder.mkdir(mode=0o700)
    folder.chmod(0o700)
    inner = folder / "note.txt"
    inner.write_text("x")
    inner.chmod(0o644)
    outer = tmp_path / "open.txt"
    outer.write_text("x")
    outer.chmod(0o644)
    readers = PathReaders()
    # pytest's base folder is root's alone (0700), so the open file is root's too; the closed folder
    # takes nothing away from root and everything from the rest
    assert readers.of(inner).allow == readers.of(outer).allow == {f"user:{ROOT}"}
    folder.chmod(0o755)
    assert PUBLIC not in PathReaders().of(inner).allow  # still under pytest's 0700 folder
