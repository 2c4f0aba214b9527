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
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from mmrag.ingest.detect import is_hidden_or_system
from mmrag.ingest.permissions import PUBLIC, Readers, groups_of, intersect
from mmrag.pipeline.config import SourceConfig
from mmrag.pipeline.sources import Item, SourceError
from mmrag.pipeline.sources.smb_acl import (
    NEED_READ,
    NEED_TRAVERSE,
    READ_CONTROL,
    Descriptor,
    Lsa,
    SidNames,
    parse_descriptor,
    readers_of,
    smb_errors,
)

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5  # seconds to reach the server and agree on a dialect: a dead server fails fast
IDLE_TIMEOUT = 15  # seconds of silence before a keep-alive echo; no answer for as long again drops the link
_LOCAL_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_HIDDEN, _SYSTEM, _DIRECTORY, _REPARSE_POINT = 0x2, 0x4, 0x10, 0x400  # FILE_ATTRIBUTE_*
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
        except smb_errors() as e:
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
        except smb_errors() as e:
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
            raw = SMBRawIO(unc, mode="rb", share_access="rwd", desired_access=READ_CONTROL, **self._kwargs())
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
        except smb_errors(IndexError) as e:
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
        except smb_errors() as e:
            dest.unlink(missing_ok=True)
            raise self._failure(e, f"cannot read {item.path}") from e

    def close(self) -> None:
        import smbclient

        smbclient.reset_connection_cache(fail_on_error=False, connection_cache=self._connections)
