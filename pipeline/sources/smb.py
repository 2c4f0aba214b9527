"""An SMB share (a Windows file server, Samba, a NAS) as a named source: ``kind = "smb"``.

``url = "smb://host[:port]/share/folder"`` with the ``username`` and ``password`` of an account that may
read the whole folder (a crawler account; its rights are not who may read a file). Each source keeps
its own connections, signed, and encrypted whenever the server can encrypt. The version token is
``mtime_ns:size``, from the listing, so an unchanged file costs no extra request.

Who may read a file comes from the server's own answer, its security descriptor, read as Windows
reads it: the DACL's entries in order, the first entry that grants or denies read for a SID deciding
for it; the owner gets nothing the DACL does not give it. As on the local walk
(``ingest.permissions``), the readers of the folders above (who may traverse them, from the share's
root down) are intersected with the file's own: Samba, or a Windows folder whose files do not inherit
its ACL, hides a world-readable file inside a closed folder. SIDs are named by the server's LSA
service (``\\PIPE\\lsarpc``, what ``rpcclient lookupsids`` asks): the server's own accounts and its
Unix users and groups as ``user:NAME``/``group:NAME`` (the same people as this machine's accounts of
that name, as on a shared directory), Everyone and Authenticated Users as ``PUBLIC``, a domain's
accounts as ``user:DOMAIN\\NAME`` (no local account is called that, so they fail closed), and what
cannot be named as ``sid:S-1-...`` (nobody). A file whose descriptor cannot be read has no principals
(``None``): the source's ``readers`` apply, or nobody.
"""

from __future__ import annotations

import functools
import logging
import shutil
import struct
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from mmrag.ingest.detect import is_hidden_or_system
from mmrag.ingest.permissions import PUBLIC, Readers, group_name, groups_of, intersect, user_name
from mmrag.pipeline.config import SourceConfig
from mmrag.pipeline.sources import Item, SourceError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5  # seconds to reach the server and agree on a dialect: a dead server fails fast
IDLE_TIMEOUT = 15  # seconds of silence before a keep-alive echo; no answer for as long again drops the link
_LOCAL_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_HIDDEN, _SYSTEM, _DIRECTORY, _REPARSE_POINT = 0x2, 0x4, 0x10, 0x400  # FILE_ATTRIBUTE_*
_READ_DATA, _TRAVERSE, _READ_CONTROL = 0x1, 0x20, 0x20000
_GENERIC_ALL, _GENERIC_EXECUTE, _GENERIC_READ = 0x10000000, 0x20000000, 0x80000000
NEED_READ = _READ_DATA | _GENERIC_READ | _GENERIC_ALL
NEED_TRAVERSE = _TRAVERSE | _GENERIC_EXECUTE | _GENERIC_ALL
_ALLOWED, _DENIED, _DENIED_CALLBACK = 0x0, 0x1, 0xA  # ACE types; a conditional grant is ignored (fails closed)
_INHERIT_ONLY, _DACL_PRESENT = 0x08, 0x0004
_EVERYONE = frozenset({"S-1-1-0", "S-1-5-11"})  # Everyone, Authenticated Users
_CREATORS = frozenset({"S-1-3-0", "S-1-3-1"})  # placeholders for what new files inherit
_OWNER_RIGHTS = "S-1-3-4"

_STATUS = {
    0xC000006D: "the server refused the username or password",
    0xC000006A: "the server refused the username or password",
    0xC0000022: "access denied to the source's account",
    0xC0000034: "not found (moved or deleted since it was listed?)",
    0xC000003A: "not found (moved or deleted since it was listed?)",
    0xC000000F: "not found (moved or deleted since it was listed?)",
    0xC00000CC: "the server has no share of that name",
    0xC0000225: "not found (no share or folder of that name?)",  # what a failed DFS lookup of a share ends in
    0xC0000043: "locked by another program",
}


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
            except _smb_errors(IndexError) as e:  # names are an extra: unnamed SIDs name nobody (fail closed)
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
        except _smb_errors() as e:  # the pipe of a dropped connection: nothing is left to release
            log.debug("closing the LSA pipe to %s: %s", self.server, e)


def _smb_errors(*more: type[Exception]) -> tuple[type[Exception], ...]:
    """What a failing server or network raises through smbprotocol (``ValueError``: no TCP connection)."""
    from smbprotocol.exceptions import SMBException

    return (SMBException, OSError, ValueError, struct.error, *more)


def _reason(e: BaseException) -> str:
    from smbprotocol.exceptions import SMBAuthenticationError, SMBConnectionClosed

    status = getattr(e, "ntstatus", None) or getattr(e, "status", None)
    if isinstance(status, int) and status in _STATUS:
        return _STATUS[status]
    if isinstance(e, SMBAuthenticationError):
        return "the server refused the username or password"
    if isinstance(e, SMBConnectionClosed):
        return "the server closed the connection"
    if isinstance(e, ValueError) and isinstance(e.__cause__, OSError):  # smbprotocol's wrapping of a TCP failure
        return e.__cause__.strerror or str(e.__cause__) or "timed out"
    return str(e) or type(e).__name__


class SmbSource:
    """A folder of an SMB share (see the module's note)."""

    def __init__(self, config: SourceConfig) -> None:
        self.name = config.name
        try:
            parts = urlsplit(config.url)
            port = parts.port or 445
        except ValueError as e:
            raise SourceError(f"source {self.name!r}: url has a bad port ({e})") from e
        if parts.username or parts.password:
            raise SourceError(f"source {self.name!r}: put the account in username and password, not in the url")
        segments = [unquote(s) for s in parts.path.split("/") if s]
        if parts.scheme != "smb" or not parts.hostname or not segments:
            raise SourceError(f"source {self.name!r}: url must look like smb://host[:port]/share/folder")
        self.host, self.port, self.share, self.folder = parts.hostname, port, segments[0], segments[1:]
        netloc = f"[{self.host}]" if ":" in self.host else self.host
        self.location = f"smb://{netloc}:{port}/" + "/".join(quote(s) for s in segments)
        self._username = config.username or None
        self._password = config.password or None
        self._connections: dict[str, Any] = {}  # this source's own pool: no session shared with another source

    def _kwargs(self) -> dict[str, Any]:
        return {
            "username": self._username,
            "password": self._password,
            "port": self.port,
            "connection_cache": self._connections,
            "connection_timeout": CONNECT_TIMEOUT,
        }

    def _unc(self, parts: Iterable[str], in_folder: bool = True) -> str:
        return "\\".join([f"\\\\{self.host}", self.share, *(self.folder if in_folder else ()), *parts])

    def _failure(self, e: BaseException, what: str) -> SourceError:
        reason = _reason(e)
        if self._password:
            reason = reason.replace(self._password, "***")
        return SourceError(f"source {self.name!r} ({self.location}): {what} ({reason})")

    def _connect(self) -> None:
        """Connect and log on unless still connected; encryption is asked for whenever the server offers it."""
        import smbclient
        from smbprotocol.connection import Connection

        key = f"{self.host.lower()}:{self.port}"
        current = self._connections.get(key)
        if current is not None and current.transport.connected and current.session_table:
            return
        smbclient.reset_connection_cache(fail_on_error=False, connection_cache=self._connections)
        what = f"cannot connect to {self.host}:{self.port}"
        try:
            connection = Connection(smbclient.ClientConfig().client_guid, self.host, self.port, require_signing=True)
            connection._receive_timeout = IDLE_TIMEOUT  # smbprotocol's default waits 10 minutes on a dead server
            connection.connect(timeout=CONNECT_TIMEOUT)
            self._connections[key] = connection
            what = f"cannot log on to {self.host}:{self.port} as {self._username or '(no username)'}"
            smbclient.register_session(self.host, encrypt=bool(connection.supports_encryption), **self._kwargs())
        except _smb_errors() as e:
            smbclient.reset_connection_cache(fail_on_error=False, connection_cache=self._connections)
            raise self._failure(e, what) from e

    def items(self) -> Iterator[Item]:
        self._connect()
        names = SidNames(self._open_lsa(), self.host in _LOCAL_HOSTS)
        member_of = functools.cache(groups_of)  # for this listing only: memberships change
        try:
            above: Readers | None = Readers(frozenset({PUBLIC}))
            for depth in range(len(self.folder) + 1):  # the share's root down to the folder
                here = self._descriptor(self._unc(self.folder[:depth], in_folder=False))
                above = self._passable(above, here, names, member_of)
            yield from self._walk([], above, names, member_of)
        finally:
            names.close()

    def _walk(
        self, parts: list[str], above: Readers | None, names: SidNames, member_of: Callable[[str], frozenset[str]]
    ) -> Iterator[Item]:
        import smbclient

        where = "/" + "/".join(parts)
        try:
            with smbclient.scandir(self._unc(parts), **self._kwargs()) as listing:
                entries = sorted(
                    (e for e in listing if not self._skipped(e.name, e.smb_info.file_attributes)), key=lambda e: e.name
                )
            descriptors = {e.name: self._descriptor(e.path) for e in entries}
        except OSError as e:
            if parts and getattr(e, "ntstatus", None) == 0xC0000022:
                log.warning(
                    "source %r: cannot list %s (access denied to the source's account); left out", self.name, where
                )
                return
            raise self._failure(e, f"cannot list {where}") from e
        except _smb_errors() as e:
            raise self._failure(e, f"cannot list {where}") from e
        names.learn(sid for d in descriptors.values() if d for sid in (d.owner, *(a.sid for a in d.dacl or ())))
        for entry in entries:
            info, descriptor = entry.smb_info, descriptors[entry.name]
            if info.file_attributes & _DIRECTORY:
                yield from self._walk(
                    [*parts, entry.name], self._passable(above, descriptor, names, member_of), names, member_of
                )
                continue
            modified = info.last_write_time.astimezone(UTC)
            mtime_ns = (modified - _EPOCH) // timedelta(microseconds=1) * 1000  # the listing's times are in µs
            principals = None
            if descriptor is not None and above is not None:
                principals = intersect(readers_of(descriptor, NEED_READ, names), above, member_of).principals()
            path = "/".join([*parts, entry.name])
            yield Item(path, info.end_of_file, f"{mtime_ns}:{info.end_of_file}", modified.timestamp(), principals)

    @staticmethod
    def _skipped(name: str, attributes: int) -> bool:
        # reparse points (links, junctions, cloud placeholders) may lead out of the share or loop
        return is_hidden_or_system(name) or bool(attributes & (_HIDDEN | _SYSTEM | _REPARSE_POINT))

    @staticmethod
    def _passable(
        above: Readers | None,
        descriptor: Descriptor | None,
        names: SidNames,
        member_of: Callable[[str], frozenset[str]],
    ) -> Readers | None:
        if above is None or descriptor is None:
            return None
        return intersect(readers_of(descriptor, NEED_TRAVERSE, names), above, member_of)

    def _descriptor(self, unc: str) -> Descriptor | None:
        """The owner and DACL of a file or folder; ``None`` when the server will not show them to this account."""
        from smbclient._io import SMBFileTransaction, SMBRawIO
        from smbprotocol.exceptions import SMBOSError
        from smbprotocol.open import SMB2QueryInfoRequest, SMB2QueryInfoResponse

        def unpack(sent: Any) -> bytes:
            reply = SMB2QueryInfoResponse()
            reply.unpack(raw.fd.connection.receive(sent)["data"].get_value())
            return bytes(reply["buffer"].get_value())

        try:
            raw = SMBRawIO(unc, mode="rb", share_access="rwd", desired_access=_READ_CONTROL, **self._kwargs())
            request = SMB2QueryInfoRequest()
            request["info_type"] = 3  # SMB2_0_INFO_SECURITY
            request["output_buffer_length"] = 65536
            request["additional_information"] = 0x1 | 0x4  # owner, DACL
            request["file_id"] = raw.fd.file_id
            with SMBFileTransaction(raw) as transaction:
                transaction += (request, unpack)
            return parse_descriptor(transaction.results[0])
        except (SMBOSError, struct.error, IndexError) as e:  # refused, gone since the listing, or malformed
            log.debug("source %r: no security descriptor for %s (%s)", self.name, unc, e)
            return None

    def _open_lsa(self) -> Lsa | None:
        import smbclient

        try:
            pipe = smbclient.open_file(
                f"\\\\{self.host}\\IPC$\\lsarpc", mode="w+b", buffering=0, file_type="pipe", **self._kwargs()
            )
            return Lsa(pipe, self.host)
        except _smb_errors(IndexError) as e:
            log.warning("source %r: %s cannot name SIDs (%s); they stay sid:...", self.name, self.host, _reason(e))
            return None

    def fetch(self, item: Item, dest: Path) -> None:
        import smbclient

        self._connect()
        try:
            with (
                smbclient.open_file(
                    self._unc(item.path.split("/")), mode="rb", share_access="rwd", **self._kwargs()
                ) as src,
                dest.open("wb") as out,
            ):
                shutil.copyfileobj(src, out, 1 << 20)
        except _smb_errors() as e:
            dest.unlink(missing_ok=True)
            raise self._failure(e, f"cannot read {item.path}") from e

    def close(self) -> None:
        import smbclient

        smbclient.reset_connection_cache(fail_on_error=False, connection_cache=self._connections)
