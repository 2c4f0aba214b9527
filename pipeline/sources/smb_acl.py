"""Who may read a file on an SMB share, from its security descriptor, and the names of the SIDs in it.

Read as Windows reads it: the DACL's entries in order, the first entry that grants or denies read for
a SID deciding for it; the owner gets nothing the DACL does not give it; "inherit only" entries are
skipped. SIDs are named by the server's LSA service (``\\PIPE\\lsarpc``: a small DCE/RPC client here,
as no RPC library ships offline), see ``pipeline.sources.smb`` for how names become principals.
"""

from __future__ import annotations

import logging
import struct
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from mmrag.ingest.permissions import PUBLIC, Readers, group_name, user_name

log = logging.getLogger(__name__)

_READ_DATA, _TRAVERSE, READ_CONTROL = 0x1, 0x20, 0x20000
_GENERIC_ALL, _GENERIC_EXECUTE, _GENERIC_READ = 0x10000000, 0x20000000, 0x80000000
NEED_READ = _READ_DATA | _GENERIC_READ | _GENERIC_ALL
NEED_TRAVERSE = _TRAVERSE | _GENERIC_EXECUTE | _GENERIC_ALL
_ALLOWED, _DENIED, _DENIED_CALLBACK = 0x0, 0x1, 0xA  # ACE types; a conditional grant is ignored (fails closed)
_INHERIT_ONLY, _DACL_PRESENT = 0x08, 0x0004
_EVERYONE = frozenset({"S-1-1-0", "S-1-5-11"})  # Everyone, Authenticated Users
_CREATORS = frozenset({"S-1-3-0", "S-1-3-1"})  # placeholders for what new files inherit
_OWNER_RIGHTS = "S-1-3-4"


@dataclass(frozen=True, slots=True)
class Ace:
    allow: bool
    mask: int
    sid: str


@dataclass(frozen=True, slots=True)
class Descriptor:
    """What decides who may open a file: its owner and its DACL (``None``: no DACL, everyone may)."""

    owner: str
    dacl: tuple[Ace, ...] | None


def _sid_at(data: bytes, at: int) -> str:
    revision, count = data[at], data[at + 1]
    authority = int.from_bytes(data[at + 2 : at + 8], "big")
    return "-".join(["S", str(revision), str(authority), *map(str, struct.unpack_from(f"<{count}I", data, at + 8))])


def parse_descriptor(data: bytes) -> Descriptor:
    """A self-relative SECURITY_DESCRIPTOR ([MS-DTYP] 2.4.6): the owner and the DACL entries that apply to the
    object itself (inherit-only ones only shape new files). ``struct.error`` when truncated."""
    _rev, _sbz, control, owner_at, _group_at, _sacl_at, dacl_at = struct.unpack_from("<BBHIIII", data)
    owner = _sid_at(data, owner_at) if owner_at else ""
    if not control & _DACL_PRESENT or not dacl_at:
        return Descriptor(owner, None)
    count = struct.unpack_from("<H", data, dacl_at + 4)[0]
    aces, at = [], dacl_at + 8
    for _ in range(count):
        kind, flags, size, mask = struct.unpack_from("<BBHI", data, at)
        if kind in (_ALLOWED, _DENIED, _DENIED_CALLBACK) and not flags & _INHERIT_ONLY:
            aces.append(Ace(kind == _ALLOWED, mask, _sid_at(data, at + 8)))
        at += size
    return Descriptor(owner, tuple(aces))


def readers_of(descriptor: Descriptor, need: int, name: Callable[[str], str | None]) -> Readers:
    """Who holds ``need`` (``NEED_READ``, ``NEED_TRAVERSE``) by this descriptor; ``name`` gives a SID's principal
    (``None``: an entry for nobody in particular). The first entry naming a principal decides for it, as Windows
    walks a DACL; a deny kept for one principal refuses it whatever another entry grants it (stricter than Windows,
    where an earlier grant to the person would win over a later deny to their group). A deny for someone no local
    account can be (``sid:...``, ``DOMAIN\\NAME``) refuses everyone: who it covers is unknown here."""
    if descriptor.dacl is None:
        return Readers(frozenset({PUBLIC}))
    decided: dict[str, bool] = {}
    for ace in descriptor.dacl:
        if ace.mask & need:
            principal = name(descriptor.owner if ace.sid == _OWNER_RIGHTS else ace.sid)
            if principal:
                decided.setdefault(principal, ace.allow)
    allow = frozenset(p for p, granted in decided.items() if granted)
    deny = frozenset(decided) - allow
    if any(p.startswith("sid:") or "\\" in p for p in deny):
        deny |= {PUBLIC}
    return Readers(allow, deny)


class SidNames:
    """SIDs as principals, for one listing: asked of the server's LSA service in batches, remembered meanwhile."""

    def __init__(self, lsa: Lsa | None, local_server: bool) -> None:
        self._lsa = lsa
        self._local = local_server  # the server's Unix ids are this machine's: name them without asking
        self._known: dict[str, str] = {}

    def learn(self, sids: Iterable[str]) -> None:
        new = sorted({s for s in sids if s not in self._known and s not in _EVERYONE and s not in _CREATORS})
        if self._lsa is not None and new:
            try:
                self._known.update(self._lsa.lookup(new))
            except smb_errors(IndexError) as e:  # names are an extra: unnamed SIDs name nobody (fail closed)
                log.warning(
                    "SMB server %s could not name %d SIDs (%s); they stay sid:...", self._lsa.server, len(new), e
                )
                self._lsa = None
        for sid in new:
            self._known.setdefault(sid, self._fallback(sid))

    def _fallback(self, sid: str) -> str:
        if self._local and sid.startswith(("S-1-22-1-", "S-1-22-2-")):
            number = int(sid.rsplit("-", 1)[1])
            return f"user:{user_name(number)}" if sid.startswith("S-1-22-1-") else f"group:{group_name(number)}"
        return f"sid:{sid}"

    def __call__(self, sid: str) -> str | None:
        if sid in _EVERYONE:
            return PUBLIC
        if sid in _CREATORS:
            return None
        self.learn([sid])
        return self._known[sid]

    def close(self) -> None:
        if self._lsa is not None:
            self._lsa.close()


_LSA_SYNTAX = uuid.UUID("12345778-1234-abcd-ef00-0123456789ab").bytes_le + struct.pack("<I", 0)
_NDR_SYNTAX = uuid.UUID("8a885d04-1ceb-11c9-9fe8-08002b104860").bytes_le + struct.pack("<I", 2)
_FRAGMENT = 4280
_BATCH = 64  # SIDs per lookup, so one request stays one fragment
_USER, _GROUP_USES = 1, (2, 4, 5)  # SID_NAME_USE: user; group, alias, well-known group


class _Ndr:
    """Reads NDR20 (little-endian) from an RPC response's stub."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def align(self, size: int) -> None:
        self.at += -self.at % size

    def u16(self) -> int:
        self.align(2)
        self.at += 2
        return int(struct.unpack_from("<H", self.data, self.at - 2)[0])

    def u32(self) -> int:
        self.align(4)
        self.at += 4
        return int(struct.unpack_from("<I", self.data, self.at - 4)[0])

    def text(self) -> str:  # a conformant varying UTF-16 array: max count, offset, count, characters
        self.u32(), self.u32()
        count = self.u32()
        self.at += 2 * count
        return self.data[self.at - 2 * count : self.at].decode("utf-16-le")

    def sid(self) -> str:
        self.u32()
        found = _sid_at(self.data, self.at)
        self.at += 8 + 4 * self.data[self.at + 1]
        return found

    def unicode_string(self) -> int:  # RPC_UNICODE_STRING: lengths, then a pointer to the text (deferred)
        self.align(4)
        self.u16(), self.u16()
        return self.u32()


def _sid_bytes(sid: str) -> bytes:
    revision, authority, *subs = (int(p) for p in sid.split("-")[1:])
    head = struct.pack("<IBB", len(subs), revision, len(subs)) + authority.to_bytes(6, "big")
    return head + struct.pack(f"<{len(subs)}I", *subs)


class Lsa:
    """Just enough of MS-LSAD over DCE/RPC on the ``lsarpc`` pipe to name SIDs: OpenPolicy2, the server's own
    account domain (QueryInformationPolicy) and LookupSids."""

    def __init__(self, pipe: Any, server: str) -> None:
        self._pipe, self.server, self._call_id = pipe, server, 0
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        bind = struct.pack("<HHIB3xHBx", _FRAGMENT, _FRAGMENT, 0, 1, 0, 1) + _LSA_SYNTAX + _NDR_SYNTAX
        ack = self._exchange(11, bind)
        if ack[2] != 12:
            raise ConnectionError(f"LSA bind refused (PDU type {ack[2]})")
        opened = self._call(44, struct.pack("<I6II", 0, 24, 0, 0, 0, 0, 0, 0x801))  # view local info, look up names
        self._handle = opened[:20]
        reply = _Ndr(self._call(7, self._handle + struct.pack("<H", 5)))  # PolicyAccountDomainInformation
        self.account_domain = ""
        if reply.u32():
            reply.u16()
            has_name, has_sid = reply.unicode_string(), reply.u32()
            if has_name:
                reply.text()
            self.account_domain = reply.sid() if has_sid else ""

    def _exchange(self, kind: int, body: bytes) -> bytes:
        self._call_id += 1
        self._pipe.write(
            struct.pack("<BBBB4sHHI", 5, 0, kind, 3, b"\x10\0\0\0", 16 + len(body), 0, self._call_id) + body
        )
        return bytes(self._pipe.read(_FRAGMENT))

    def _call(self, opnum: int, stub: bytes) -> bytes:
        fragment = self._exchange(0, struct.pack("<IHH", len(stub), 0, opnum) + stub)
        out = b""
        while True:
            if fragment[2] == 3:
                raise ConnectionError(
                    f"LSA call {opnum} failed with status {struct.unpack_from('<I', fragment, 24)[0]:#x}"
                )
            out += fragment[24 : struct.unpack_from("<H", fragment, 8)[0]]
            if fragment[3] & 2:  # the last fragment
                break
            fragment = bytes(self._pipe.read(_FRAGMENT))
        status = struct.unpack_from("<I", out, len(out) - 4)[0]
        if status not in (0, 0x107, 0xC0000073):  # success, some or none mapped
            raise ConnectionError(f"LSA call {opnum} returned status {status:#x}")
        return out

    def lookup(self, sids: list[str]) -> dict[str, str]:
        """Principals of the SIDs the server can name (the others are left out)."""
        found: dict[str, str] = {}
        for start in range(0, len(sids), _BATCH):
            batch = sids[start : start + _BATCH]
            pointers = b"".join(struct.pack("<I", 0x20004 + i) for i in range(len(batch)))
            stub = self._handle + struct.pack("<III", len(batch), 0x20000, len(batch)) + pointers
            stub += b"".join(_sid_bytes(s) for s in batch) + struct.pack("<IIHHI", 0, 0, 1, 0, 0)
            found.update(self._names(batch, _Ndr(self._call(15, stub))))
        return found

    def _names(self, batch: list[str], reply: _Ndr) -> dict[str, str]:
        domains: list[tuple[str, str]] = []
        if reply.u32():
            count, has_list, _ = reply.u32(), reply.u32(), reply.u32()
            if has_list:
                reply.u32()
                pointers = [(reply.unicode_string(), reply.u32()) for _ in range(count)]
                domains = [(reply.text() if n else "", reply.sid() if s else "") for n, s in pointers]
        count, has_names = reply.u32(), reply.u32()
        if not has_names:
            return {}
        reply.u32()
        names: list[tuple[int, int, int]] = []
        for _ in range(count):
            reply.align(4)  # LSAPR_TRANSLATED_NAME: a 2-byte use, a string, a domain index
            names.append((reply.u16(), reply.unicode_string(), reply.u32()))
        found = {}
        for sid, (use, has_text, index) in zip(batch, names, strict=True):
            text = reply.text() if has_text else ""
            domain, domain_sid = domains[index] if 0 <= index < len(domains) else ("", "")
            kind = "user" if use == _USER else "group" if use in _GROUP_USES else ""
            if not kind or not text:
                continue
            if domain_sid == self.account_domain or sid.startswith("S-1-22-"):
                found[sid] = f"{kind}:{text}"
            elif domain:
                found[sid] = f"{kind}:{domain}\\{text}"
        return found

    def close(self) -> None:
        try:
            self._pipe.close()
        except smb_errors() as e:  # the pipe of a dropped connection: nothing is left to release
            log.debug("closing the LSA pipe to %s: %s", self.server, e)


def smb_errors(*more: type[Exception]) -> tuple[type[Exception], ...]:
    """What a failing server or network raises through smbprotocol (``ValueError``: no TCP connection)."""
    from smbprotocol.exceptions import SMBException

    return (SMBException, OSError, ValueError, struct.error, *more)
