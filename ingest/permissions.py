"""Who may read a file, from the file system's own permissions: POSIX mode bits and ACLs.

A file's readers are principals: ``user:NAME``, ``group:NAME`` and ``PUBLIC`` (everyone), plus deny
entries (``!user:NAME``, ``!group:NAME``) for what POSIX refuses to a class that "other" would allow.
Reading needs ``r`` on the file and ``x`` on every directory above it, so the readers of each level are
intersected. What one set of principals cannot say is dropped, failing closed: a file readable by
group A under a folder passable by group B is readable by people in both, which no single principal
names, so nobody but those named on both levels is kept. A user named on one level is kept when a group
on the other level holds them (as that group is at ingest time: re-ingest after such a change).

POSIX asks the classes in order (owner, then named users, then groups, then other) and stops at the
first that matches, so a class without the permission denies its members even where "other" has it:
that is what the deny entries carry. Root reads everything and is not modelled.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

PUBLIC = "PUBLIC"
DENY = "!"  # prefix of a deny entry: "!group:eng" hides the file from members of eng

_ACL_XATTR = "system.posix_acl_access"
_USER_OBJ, _USER, _GROUP_OBJ, _GROUP, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_READ, _EXECUTE = 4, 1


@dataclass(frozen=True, slots=True)
class Readers:
    """Who may pass one level (``allow``), and who is refused although ``allow`` names them (``deny``)."""

    allow: frozenset[str]
    deny: frozenset[str] = field(default_factory=frozenset)

    def principals(self) -> tuple[str, ...]:
        """The stored form: allowed principals, then deny entries, sorted (empty when nobody may read)."""
        return tuple(sorted(self.allow)) + tuple(sorted(DENY + p for p in self.deny))


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid{uid}"  # a number no account has: it names nobody a person can log in as


def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return f"gid{gid}"


def groups_of(name: str) -> frozenset[str]:
    """The groups a user is in (primary included), as principals, read from the system databases now."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return frozenset()
    return frozenset(f"group:{group_name(g)}" for g in os.getgrouplist(name, entry.pw_gid))


def parse_acl(raw: bytes) -> list[tuple[int, int, int]]:
    """(tag, permission bits, id) entries of a Linux ``system.posix_acl_access`` value ([] when malformed)."""
    if len(raw) < 4 or struct.unpack_from("<I", raw)[0] != 2 or (len(raw) - 4) % 8:
        return []
    return [struct.unpack_from("<HHI", raw, offset) for offset in range(4, len(raw), 8)]


def _acl_of(path: Path) -> list[tuple[int, int, int]]:
    try:
        return parse_acl(os.getxattr(path, _ACL_XATTR))
    except OSError:  # no ACL beyond the mode bits, or a file system without them
        return []


def level_readers(st: os.stat_result, need: int, acl: Iterable[tuple[int, int, int]] = ()) -> Readers:
    """Who holds ``need`` (4 = read, 1 = execute) on one file or directory with this status and ACL."""
    mode = stat.S_IMODE(st.st_mode)
    owner_bits, group_bits, other_bits = (mode >> 6) & 7, (mode >> 3) & 7, mode & 7
    users: dict[str, int] = {}
    owning_group = f"group:{group_name(st.st_gid)}"
    groups: dict[str, int] = {owning_group: group_bits}
    named: dict[str, int] = {}
    mask = 7
    for tag, perm, ident in acl:
        if tag == _USER_OBJ:
            owner_bits = perm
        elif tag == _USER and ident != st.st_uid:  # the owner class decides for the owner, whatever names them
            users[f"user:{user_name(ident)}"] = perm
        elif tag == _GROUP_OBJ:
            groups[owning_group] = perm
        elif tag == _GROUP:
            name = f"group:{group_name(ident)}"
            named[name] = named.get(name, 0) | perm
        elif tag == _MASK:
            mask = perm
        elif tag == _OTHER:
            other_bits = perm
    for name, perm in named.items():  # any matching group entry that grants, grants
        groups[name] = groups.get(name, 0) | perm
    owner = f"user:{user_name(st.st_uid)}"
    allow: set[str] = set()
    deny: set[str] = set()
    everyone = bool(other_bits & need)
    if everyone:
        allow.add(PUBLIC)
    if owner_bits & need:
        allow.add(owner)
    else:
        deny.add(owner)  # the owner class decides for the owner, whatever the others may
    for name, perm in users.items():
        (allow if perm & mask & need else deny).add(name)
    for name, perm in groups.items():
        if perm & mask & need:
            allow.add(name)
        elif everyone:  # a group class without it refuses its members what "other" allows
            deny.add(name)
    return Readers(frozenset(allow), frozenset(deny - allow))


def passes(level: Readers, user: str, groups: frozenset[str]) -> bool:
    """Whether ``user`` (``user:NAME``), in ``groups`` (``group:NAME``), passes one level, asked in POSIX's
    order: the user's own entry (owner or named user) first, then their groups (any that grants, grants),
    then everyone."""
    if user in level.deny:
        return False
    if user in level.allow:
        return True
    if groups & level.allow:
        return True
    if groups & level.deny:
        return False
    return PUBLIC in level.allow


def intersect(a: Readers, b: Readers, member_of: Callable[[str], frozenset[str]] = groups_of) -> Readers:
    """Who passes both levels, as far as principals can say it (see the module's note); ``member_of`` gives
    a user's groups.

    Every user either level names is decided here, level by level in POSIX's order, and kept as allowed
    (their own entry then outranks a group's deny when the file is read, as the owner class outranks the
    group class) or denied; groups and everyone follow the plain rule: one allowed, none denied."""
    deny = a.deny | b.deny
    if PUBLIC in a.allow:
        allow = set(b.allow)
    elif PUBLIC in b.allow:
        allow = set(a.allow)
    else:
        allow = set(a.allow & b.allow)
        for mine, other in ((a.allow, b.allow), (b.allow, a.allow)):
            for p in mine:
                if p.startswith("user:") and member_of(p[5:]) & other:
                    allow.add(p)
    named = {p for p in a.allow | b.allow | a.deny | b.deny if p.startswith("user:")}
    denied = set(deny)
    for user in named:
        groups = member_of(user[5:])
        if passes(a, user, groups) and passes(b, user, groups):
            allow.add(user)
            denied.discard(user)
        else:
            allow.discard(user)
            denied.add(user)
    return Readers(frozenset(allow), frozenset(denied))


class PathReaders:
    """Readers of files under one or more folders; each directory's readers are worked out once per run."""

    def __init__(self) -> None:
        self._dirs: dict[Path, Readers] = {}
        self._groups: dict[str, frozenset[str]] = {}  # for this run only: memberships change

    def _member_of(self, user: str) -> frozenset[str]:
        if user not in self._groups:
            self._groups[user] = groups_of(user)
        return self._groups[user]

    def of(self, path: Path) -> Readers:
        """Who may read ``path`` (followed to the real file), given every directory above it."""
        real = Path(os.path.realpath(path))
        st = real.stat()
        readers = level_readers(st, _READ, _acl_of(real))
        return intersect(readers, self._passable(real.parent), self._member_of)

    def _passable(self, folder: Path) -> Readers:
        if folder in self._dirs:
            return self._dirs[folder]
        st = folder.stat()
        here = level_readers(st, _EXECUTE, _acl_of(folder))
        result = here if folder.parent == folder else intersect(here, self._passable(folder.parent), self._member_of)
        self._dirs[folder] = result
        return result


def visible(readers: Iterable[str], principals: frozenset[str]) -> bool:
    """Whether someone holding ``principals`` may read a file with these stored readers (the same rule
    the stores' filters apply): their own user entry decides when there is one (denied, or allowed
    whatever their groups' entries say, as POSIX asks the owner and named users first); otherwise one of
    their principals is allowed and none is denied."""
    stored = set(readers)
    users = {p for p in principals if p.startswith("user:")}
    if any(DENY + u in stored for u in users):
        return False
    if users & stored:
        return True
    return bool(stored & principals) and not any(DENY + p in stored for p in principals)
