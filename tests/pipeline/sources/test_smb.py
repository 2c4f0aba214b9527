"""The SMB source against a real Samba server (``smb_server``): listing, downloads, refused and dead servers,
who may read each file (from the security descriptors Samba reports, checked against what the kernel lets each
account read), and syncing a share into an index with document permissions on.

Each test works in its own folder of the share; the crawler account reads everything, the two people only
what their Unix permissions allow.
"""

# ruff: noqa: F811  (the fixture imported from smb_server comes back as the tests' parameter)

from __future__ import annotations

import logging
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import pytest
import smbclient
from fakes import CountingEmbedder
from index_state import index_state
from smb_server import SMBD, SmbServer, _add_account, _config, _wait_for, smb_server  # noqa: F401
from smb_server import _stop as _stop_daemon

from mmrag.ingest.permissions import PUBLIC, visible
from mmrag.pipeline.api import ingest, search
from mmrag.pipeline.bench.common import free_port
from mmrag.pipeline.config import Config, SourceConfig, load_config
from mmrag.pipeline.filters import Filters
from mmrag.pipeline.permissions import principals_for_user
from mmrag.pipeline.sources import Item, SourceError, open_source
from mmrag.pipeline.sources.smb import SmbSource
from mmrag.pipeline.sources.smb_acl import NEED_READ, parse_descriptor, readers_of

USER1, USER2 = "mmragsmb1", "mmragsmb2"

SMB_FIELDS = ("root", "source", "size", "sha256", "status", "chunks", "version", "principals")


def source_for(server: SmbServer, folder: str, user: str | None = None, password: str | None = None) -> SmbSource:
    account = user or server.crawler
    secret = server.passwords[account] if password is None else password
    source = open_source(SourceConfig("files", "smb", server.url(folder), username=account, password=secret))
    assert isinstance(source, SmbSource)
    return source


def folder(server: SmbServer, name: str) -> Path:
    """A fresh folder of the share that everyone may pass through and list."""
    path = server.share / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(mode=0o755)
    return path


def write(root: Path, path: str, data: str | bytes, mode: int = 0o644) -> Path:
    file = root / path
    for parent in reversed(file.relative_to(root).parents):
        (root / parent).mkdir(mode=0o755, exist_ok=True)
    file.write_bytes(data.encode() if isinstance(data, str) else data)
    file.chmod(mode)
    return file


def test_lists_nested_folders_with_sizes_and_versions_and_skips_hidden(smb_server: SmbServer) -> None:
    root = folder(smb_server, "listing")
    write(root, "a.txt", "alpha\n")
    write(root, "reports/q3.txt", "third quarter\n")
    write(root, "reports/2025/deep name ä#1.txt", "nested and oddly named\n")
    for hidden in (".secret.txt", "~$draft.docx", "Thumbs.db", ".git/config", "reports/.cache/x.txt"):
        write(root, hidden, "hidden\n")
    os.utime(root / "a.txt", ns=(1_700_000_000_123_456_789, 1_700_000_000_123_456_789))
    # Hidden by its attribute, not its name: created over SMB, as Windows Explorer would.
    unc = rf"\\{smb_server.host}\drive\listing\reports\marked hidden.txt"
    account = {"username": smb_server.crawler, "password": smb_server.passwords[smb_server.crawler]}
    with smbclient.open_file(unc, mode="wb", file_attributes=0x2, port=smb_server.port, **account) as f:
        f.write(b"hidden by attribute\n")
    smbclient.reset_connection_cache()

    source = source_for(smb_server, "listing")
    try:
        items = list(source.items())
        assert [i.path for i in items] == ["a.txt", "reports/2025/deep name ä#1.txt", "reports/q3.txt"]
        assert [i.size for i in items] == [(root / i.path).stat().st_size for i in items]
        assert items[0].version == f"{1_700_000_000_123_456_000}:6"  # the listing's times are in microseconds
        assert items[0].modified == pytest.approx(1_700_000_000.123456)
        assert source.location == f"smb://127.0.0.1:{smb_server.port}/drive/listing"

        before = {i.path: i.version for i in items}
        write(root, "a.txt", "ALPHA\n")  # same size, new content
        os.utime(root / "a.txt", ns=(1_700_000_100_000_000_000, 1_700_000_100_000_000_000))
        after = {i.path: i.version for i in source.items()}
        assert after["a.txt"] != before["a.txt"]
        assert after["reports/q3.txt"] == before["reports/q3.txt"]
    finally:
        source.close()


def test_a_wrong_password_is_refused_without_showing_it(
    smb_server: SmbServer, caplog: pytest.LogCaptureFixture
) -> None:
    write(folder(smb_server, "refused"), "a.txt", "alpha\n")
    source = source_for(smb_server, "refused", user=USER1, password="wr0ng-Pa55word")
    caplog.set_level(logging.DEBUG)
    try:
        with pytest.raises(SourceError) as refused:
            list(source.items())
        with pytest.raises(SourceError) as unreadable:
            source.fetch(Item("a.txt", 6, "x", 0.0), smb_server.share / "out.txt")
    finally:
        source.close()
    for message in (str(refused.value), str(unreadable.value)):
        assert message.startswith(f"source 'files' (smb://127.0.0.1:{smb_server.port}/drive/refused): cannot log on")
        assert "refused the username or password" in message
        assert "wr0ng-Pa55word" not in message and smb_server.passwords[USER1] not in message
    assert "wr0ng-Pa55word" not in caplog.text
    assert not (smb_server.share / "out.txt").exists()


def test_a_missing_share_or_folder_is_reported(smb_server: SmbServer) -> None:
    for url, problem in (
        (f"smb://127.0.0.1:{smb_server.port}/nosuchshare/x", "cannot list / (not found (no share or folder"),
        (smb_server.url("no/such/folder"), "cannot list / (not found"),
    ):
        secret = smb_server.passwords[smb_server.crawler]
        config = SourceConfig("files", "smb", url, username=smb_server.crawler, password=secret)
        source = open_source(config)
        try:
            with pytest.raises(SourceError, match=re.escape(problem)):
                list(source.items())
        finally:
            source.close()


def test_credentials_in_the_url_are_refused_without_echoing_them() -> None:
    with pytest.raises(SourceError) as refused:
        open_source(SourceConfig("files", "smb", "smb://bob:hunter2@127.0.0.1/drive/x"))
    assert "username and password" in str(refused.value) and "hunter2" not in str(refused.value)


def test_fetch_writes_the_exact_bytes(smb_server: SmbServer, tmp_path: Path) -> None:
    root = folder(smb_server, "fetch")
    data = os.urandom(3 * 1024 * 1024 + 17)  # several read requests, not a multiple of one
    write(root, "big #1 ü.bin", data)
    source = source_for(smb_server, "fetch")
    try:
        (item,) = source.items()
        assert item.size == len(data)
        source.fetch(item, tmp_path / "copy.bin")
        assert (tmp_path / "copy.bin").read_bytes() == data

        (root / "big #1 ü.bin").unlink()
        with pytest.raises(SourceError, match=r"cannot read big #1 ü\.bin \(not found"):
            source.fetch(item, tmp_path / "again.bin")
        assert not (tmp_path / "again.bin").exists()
    finally:
        source.close()


def test_an_unreachable_server_fails_in_seconds() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    source = open_source(SourceConfig("files", "smb", f"smb://127.0.0.1:{port}/drive/x", "bob", "s3cret-pass"))
    started = time.monotonic()
    try:
        with pytest.raises(SourceError) as failed:
            list(source.items())
    finally:
        source.close()
    assert time.monotonic() - started < 15
    message = str(failed.value)
    assert message.startswith(f"source 'files' (smb://127.0.0.1:{port}/drive/x): cannot connect to 127.0.0.1:{port}")
    assert "refused" in message and "s3cret-pass" not in message


def test_a_server_that_never_answers_times_out() -> None:
    with socket.socket() as silent:  # accepts connections (the kernel does) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        source = open_source(SourceConfig("files", "smb", f"smb://127.0.0.1:{port}/drive/x", "bob", "pw"))
        started = time.monotonic()
        try:
            with pytest.raises(SourceError, match="cannot connect to"):
                list(source.items())
        finally:
            source.close()
    assert time.monotonic() - started < 15


def test_the_session_is_encrypted_when_the_server_can(smb_server: SmbServer) -> None:
    write(folder(smb_server, "sealed"), "a.txt", "alpha\n")
    source = source_for(smb_server, "sealed", user=USER2)  # the only test that logs on as user2: its session
    try:
        list(source.items())
        status = subprocess.run(["smbstatus", "-b", "-s", str(smb_server.conf)], capture_output=True, text=True)
    finally:
        source.close()
    if status.returncode != 0 or "Encryption" not in status.stdout:
        pytest.skip(f"smbstatus shows no encryption column here: {status.stdout}{status.stderr}")
    (line,) = [row for row in status.stdout.splitlines() if USER2 in row]
    encryption, _signing = line.split()[-2:]
    assert "AES" in encryption, line  # "partial(AES-128-GCM)": all but the log-on is encrypted; "-" when not


# --- who may read what ------------------------------------------------------------------------------


def os_can_read(user: str, path: Path) -> bool:
    """The truth: whether the kernel lets ``user`` (with their groups) read ``path``."""
    entry = pwd.getpwnam(user)
    run = ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups", "cat", str(path)]
    return subprocess.run(run, capture_output=True).returncode == 0


def make_permissions_drive(root: Path) -> None:
    """A: user1 only (owner, 0600). B: user2 only (a POSIX ACL entry on a 0600 root file). C: everyone.
    D: world-readable, but in a folder only user2 may enter. E: user1's group (0640)."""
    a = write(root, "a.txt", "Alpha report: the harbour project codeword is quillfeather.\n", 0o600)
    shutil.chown(a, USER1)
    b = write(root, "b.txt", "Beta report: the merger codeword is bluefinch.\n", 0o600)
    subprocess.run(["setfacl", "-m", f"u:{USER2}:r", str(b)], check=True)
    write(root, "c.txt", "Canteen menu: soup on Mondays, codeword lentilmoon.\n", 0o644)
    closed = root / "closed"
    closed.mkdir(mode=0o700)
    shutil.chown(closed, USER2)
    write(root, "closed/d.txt", "Delta plan: the relocation codeword is marigoldvault.\n", 0o644)
    e = write(root, "e.txt", "Echo minutes: the team codeword is copperwren.\n", 0o640)
    shutil.chown(e, group=USER1)  # useradd made each account its own group


CODEWORDS = {
    "a.txt": "quillfeather",
    "b.txt": "bluefinch",
    "c.txt": "lentilmoon",
    "closed/d.txt": "marigoldvault",
    "e.txt": "copperwren",
}


@pytest.fixture
def tools() -> None:
    for tool in ("setpriv", "setfacl"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} to set and check permissions")


def _allowed(principals: tuple[str, ...] | None) -> tuple[str, ...] | None:
    return None if principals is None else tuple(p for p in principals if not p.startswith("!"))


def test_principals_match_what_the_os_lets_each_user_read(smb_server: SmbServer, tools: None) -> None:
    root = folder(smb_server, "perms")
    make_permissions_drive(root)
    source = source_for(smb_server, "perms")
    try:
        items = {i.path: i for i in source.items()}
    finally:
        source.close()
    assert sorted(items) == sorted(CODEWORDS)
    assert _allowed(items["a.txt"].principals) == (f"user:{USER1}",)  # (plus deny entries for the others named)
    assert items["b.txt"].principals is not None
    assert f"user:{USER2}" in items["b.txt"].principals and f"user:{USER1}" not in items["b.txt"].principals
    assert PUBLIC in (_allowed(items["c.txt"].principals) or ())
    assert items["e.txt"].principals is not None and f"group:{USER1}" in items["e.txt"].principals
    for user in (USER1, USER2):
        mine = principals_for_user(user)
        for path, item in items.items():
            assert item.principals is not None
            allowed = os_can_read(user, root / path)
            assert visible(item.principals, mine) == allowed, (user, path, item.principals, allowed)
    assert os_can_read(USER2, root / "closed/d.txt") and not os_can_read(USER1, root / "closed/d.txt")
    assert os_can_read(USER1, root / "e.txt") and not os_can_read(USER2, root / "e.txt")


def test_what_the_account_cannot_see_has_no_principals_and_cannot_be_fetched(
    smb_server: SmbServer, tools: None, tmp_path: Path
) -> None:
    root = folder(smb_server, "as-user")
    make_permissions_drive(root)
    source = source_for(smb_server, "as-user", user=USER1)  # a person's account, not the crawler
    try:
        items = {i.path: i for i in source.items()}
        assert "closed/d.txt" not in items  # a folder the account may not list is left out
        assert items["b.txt"].principals is None  # its descriptor is refused: the ingest fails closed
        assert _allowed(items["a.txt"].principals) == (f"user:{USER1}",)
        source.fetch(items["a.txt"], tmp_path / "a.txt")
        assert "quillfeather" in (tmp_path / "a.txt").read_text()
        with pytest.raises(SourceError, match=r"source 'files' .*: cannot read b\.txt \(access denied"):
            source.fetch(items["b.txt"], tmp_path / "b.txt")
    finally:
        source.close()


ALICE, STAFF, STRANGER, OWNER_RIGHTS = "S-1-5-21-1-2-3-1001", "S-1-5-21-1-2-3-513", "S-1-5-21-9-9-9-1107", "S-1-3-4"
NAMES = {"S-1-1-0": PUBLIC, ALICE: "user:alice", STAFF: "group:staff"}


def descriptor(aces: list[tuple[str, str, int, int]] | None) -> bytes:
    """A self-relative security descriptor owned by alice, built with smbprotocol's own structures:
    (allow|deny, SID, access mask, ACE flags) entries, or no DACL at all."""
    from smbprotocol.security_descriptor import (
        AccessAllowedAce,
        AccessDeniedAce,
        AclPacket,
        SDControl,
        SIDPacket,
        SMB2CreateSDBuffer,
    )

    def sid(text: str) -> SIDPacket:
        packet = SIDPacket()
        packet.from_string(text)
        return packet

    sd = SMB2CreateSDBuffer()
    sd["control"].set_flag(SDControl.SELF_RELATIVE)
    sd.set_owner(sid(ALICE))
    if aces is not None:
        entries = []
        for kind, who, mask, flags in aces:
            entry = AccessAllowedAce() if kind == "allow" else AccessDeniedAce()
            entry["mask"], entry["ace_flags"], entry["sid"] = mask, flags, sid(who)
            entries.append(entry)
        acl = AclPacket()
        acl["aces"] = entries
        sd.set_dacl(acl)
        sd["control"].set_flag(SDControl.DACL_PRESENT)
    return bytes(sd.pack())


@pytest.mark.parametrize(
    ("aces", "principals"),
    [
        (None, (PUBLIC,)),  # no DACL: everyone may
        ([], ()),  # an empty DACL: nobody may
        ([("allow", ALICE, 0x1, 0), ("deny", ALICE, 0x1, 0)], ("user:alice",)),  # the first entry decides
        ([("deny", ALICE, 0x1, 0), ("allow", STAFF, 0x120089, 0)], ("group:staff", "!user:alice")),
        ([("allow", ALICE, 0x2, 0)], ()),  # write without read
        ([("allow", ALICE, 0x10000000, 0)], ("user:alice",)),  # GENERIC_ALL
        ([("allow", ALICE, 0x1, 0x08 | 0x01)], ()),  # inherit-only: for new files, not this one
        ([("allow", OWNER_RIGHTS, 0x1, 0)], ("user:alice",)),  # OWNER RIGHTS: whoever owns it
        (
            [("allow", "S-1-1-0", 0x1, 0), ("deny", STRANGER, 0x1, 0)],
            ("PUBLIC", "!PUBLIC", f"!sid:{STRANGER}"),
        ),  # an unknown deny: from everyone
    ],
)
def test_a_dacl_becomes_principals_as_windows_reads_it(
    aces: list[tuple[str, str, int, int]] | None, principals: tuple[str, ...]
) -> None:
    parsed = parse_descriptor(descriptor(aces))
    readers = readers_of(parsed, NEED_READ, lambda sid: NAMES.get(sid, f"sid:{sid}"))
    assert readers.principals() == principals


# --- syncing into an index ----------------------------------------------------------------------------


def make_config(tmp_path: Path, server: SmbServer, folder_name: str) -> Config:
    toml = tmp_path / "mmrag.toml"
    toml.write_text(
        f'[sources.files]\nkind = "smb"\nurl = "{server.url(folder_name)}"\n'
        f'username = "{server.crawler}"\npassword = "{server.passwords[server.crawler]}"\n'
        "\n[permissions]\nenabled = true\n",
        encoding="utf-8",
    )
    return load_config(config_file=toml, index_dir=tmp_path / "index", env={"XDG_CONFIG_HOME": str(tmp_path / "cfg")})


def seen_by(user: str, cfg: Config, embedder: CountingEmbedder, words: Iterable[str] = CODEWORDS.values()) -> set[str]:
    """The files whose codewords ``user``'s searches find."""
    filters = Filters(principals=principals_for_user(user))
    found = set()
    for word in words:
        found |= {h.chunk.source for h in search(word, cfg, 10, filters, embedder=embedder) if word in h.chunk.text}
    return found


def readable_by(user: str, root: Path) -> set[str]:
    return {f"files:/{p.relative_to(root).as_posix()}" for p in root.rglob("*.txt") if os_can_read(user, p)}


def test_a_share_syncs_into_the_index_and_each_user_sees_what_the_os_allows(
    smb_server: SmbServer, tools: None, tmp_path: Path
) -> None:
    root = folder(smb_server, "synced")
    make_permissions_drive(root)
    cfg = make_config(tmp_path, smb_server, "synced")
    embedder = CountingEmbedder()

    first = ingest(["files"], cfg, embedder=embedder)
    assert sorted(first.ingested) == sorted(f"files:/{p}" for p in CODEWORDS)
    assert first.failed == [] and first.by_source["files"]["listed"] == 5
    (hit,) = search("lentilmoon", cfg, k=1, filters=Filters(principals=principals_for_user(USER1)), embedder=embedder)
    assert hit.root == f"smb://127.0.0.1:{smb_server.port}/drive/synced"
    for user in (USER1, USER2):
        assert seen_by(user, cfg, embedder) == readable_by(user, root), user
    assert seen_by("mmrag-no-such-user", cfg, embedder) == {"files:/c.txt"}

    # Add, edit, rename, delete and change permissions on the share; then sync again.
    write(root, "f.txt", "Foxtrot memo: the new codeword is saffronkite.\n", 0o644)
    write(root, "c.txt", "Canteen menu: stew on Tuesdays, codeword juniperdusk.\n", 0o644)
    (root / "e.txt").rename(root / "e-renamed.txt")
    (root / "b.txt").unlink()
    (root / "a.txt").chmod(0o644)  # user1's report is now for everyone
    embedder.seen.clear()

    second = ingest(["files"], cfg, embedder=embedder)
    assert sorted(second.ingested) == ["files:/c.txt", "files:/f.txt"]
    assert second.moved == ["files:/e.txt -> files:/e-renamed.txt"]
    assert second.removed == ["files:/b.txt"] and second.failed == []
    assert second.permissions_changed == ["files:/a.txt"] and second.unchanged == 2
    embedded = " ".join(embedder.seen)
    assert "saffronkite" in embedded and "juniperdusk" in embedded
    assert "copperwren" not in embedded and "quillfeather" not in embedded  # moved or re-permitted: not embedded

    words = [*CODEWORDS.values(), "saffronkite", "juniperdusk"]
    for user in (USER1, USER2):
        found = seen_by(user, cfg, embedder, words)
        assert found == readable_by(user, root), user
        assert "files:/a.txt" in found  # the chmod took effect
    lentil = search("lentilmoon", cfg, 10, Filters(principals=principals_for_user(USER2)), embedder=embedder)
    assert not any("lentilmoon" in h.chunk.text for h in lentil)  # the old text is gone

    # Nothing changed: every item is settled on its version token and readers, not a byte downloaded.
    counting = CountingFetches(cfg.source("files") or pytest.fail("no [sources.files]"))
    embedder.texts = 0
    try:
        third = ingest([counting], cfg, embedder=embedder)
    finally:
        counting.close()
    assert third.unchanged == 5 and third.ingested == third.moved == third.removed == third.permissions_changed == []
    assert counting.fetched == [] and embedder.texts == 0


class CountingFetches(SmbSource):
    """The real source, counting the items it downloads."""

    def __init__(self, config: SourceConfig) -> None:
        super().__init__(config)
        self.fetched: list[str] = []

    def fetch(self, item: Item, dest: Path) -> None:
        self.fetched.append(item.path)
        super().fetch(item, dest)


# --- a server that goes away, a sync that is killed ------------------------------------------------


class OwnSmbd:
    """An smbd of the test's own (its own smb.conf, passdb and share, on its own port; the session server's
    crawler account and password), so that it can be stopped mid-sync and started again on the same port."""

    def __init__(self, session: SmbServer) -> None:
        top = Path(tempfile.mkdtemp(prefix="mmrag-smb-own-", dir="/tmp"))
        top.chmod(0o755)
        (top / "share").mkdir(mode=0o755)
        port = free_port()
        conf = top / "smb.conf"
        conf.write_text(_config(top, port))
        password = session.passwords[session.crawler]
        _add_account(session.crawler, conf, password)  # the Unix account exists: the session server made it
        self.top = top
        self.server = SmbServer(
            "127.0.0.1", port, top / "share", {session.crawler: password}, session.crawler, conf, top / "smbd.log"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> SmbServer:
        with self.server.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [SMBD, "--foreground", "--no-process-group", "--debug-stdout", "-s", str(self.server.conf)],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        _wait_for(self.server.port, self.proc, self.server.log)
        return self.server

    def stop(self) -> None:
        """Stop smbd and the children serving its clients; returns once the port is closed."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.server.port), timeout=1).close()
            except OSError:
                return
            time.sleep(0.05)  # a child still holding the listening socket
        raise RuntimeError(f"something still listens on port {self.server.port} after smbd stopped")

    def cleanup(self) -> None:
        try:
            self.stop()
        finally:
            _stop_daemon(self.top / "pid" / "samba-dcerpcd.pid")
            shutil.rmtree(self.top, ignore_errors=True)


def smb_drive() -> dict[str, bytes]:
    return {
        "finance/budget.txt": b"The travel budget for 2025 is 48,000 euros, signed off by the quillfeather board.\n",
        "finance/rates.csv": b"city,rate\nLisbon,142\nMarrakesh,97\nTrondheim,188\n",
        "hr/leave.txt": b"Employees receive 27 days of annual leave, booked through the zephyrine portal.\n",
        "notes/plan.md": b"# Roadmap\n\nShip the obsidianwick widget by December.\n",
        "old/obsolete.txt": b"The fax machine protocol uses the brambleton codebook.\n",
    }


def change_the_drive(root: Path, renamed: str = "notes/roadmap.md") -> None:
    """Between two syncs: add a file, edit one, rename one (same bytes, same times), delete one."""
    write(root, "notes/new.txt", "The cafeteria now serves tamarillo soup on Fridays.\n")
    write(root, "finance/budget.txt", "The travel budget for 2026 is 51,000 euros, per the quillfeather board.\n")
    (root / renamed).parent.mkdir(mode=0o755, exist_ok=True)
    (root / "notes/plan.md").rename(root / renamed)
    (root / "old/obsolete.txt").unlink()


def sources_of(query: str, cfg: Config, embedder: CountingEmbedder, k: int = 1) -> list[str]:
    return [h.chunk.source for h in search(query, cfg, k=k, embedder=embedder)]


class StopsAfter(SmbSource):
    """The real source, whose server is stopped right after the first item it hands over."""

    def __init__(self, config: SourceConfig, server: OwnSmbd) -> None:
        super().__init__(config)
        self.server = server
        self.fetched: list[str] = []

    def fetch(self, item: Item, dest: Path) -> None:
        self.fetched.append(item.path)
        super().fetch(item, dest)
        if len(self.fetched) == 1:
            self.server.stop()


def test_a_server_that_goes_away_mid_sync_leaves_the_index_as_it_was_plus_what_completed(
    smb_server: SmbServer, tmp_path: Path
) -> None:
    own = OwnSmbd(smb_server)  # its own server: stopping it must not take the session's down
    try:
        server = own.start()
        root = folder(server, "vanishing")
        for path, data in smb_drive().items():
            write(root, path, data)
        cfg = make_config(tmp_path, server, "vanishing")
        embedder = CountingEmbedder()
        first = ingest(["files"], cfg, embedder=embedder)
        assert len(first.ingested) == 5 and first.failed == []
        # The renamed file is listed first (items come in path order): its move completes, then the server goes.
        change_the_drive(root, renamed="archive/plan.md")
        for i in range(2):
            write(root, f"new/n{i}.txt", f"New note {i} names the word larkspur{i}.\n")

        source = StopsAfter(cfg.source("files") or pytest.fail("no [sources.files]"), own)
        embedder.seen.clear()
        started = time.monotonic()
        try:
            report = ingest([source], cfg, embedder=embedder)
        finally:
            source.close()
        assert time.monotonic() - started < 15
        assert own.proc is None  # the server did go away mid-sync
        assert source.fetched == [
            "archive/plan.md",
            "finance/budget.txt",
            "new/n0.txt",
            "new/n1.txt",
            "notes/new.txt",
        ]  # unchanged items are settled on their version: never fetched
        assert report.moved == ["files:/notes/plan.md -> files:/archive/plan.md"]  # what completed before it went
        assert report.ingested == [] and embedder.seen == []  # the move embedded nothing
        assert [f.file for f in report.failed] == [
            "files:/finance/budget.txt",
            "files:/new/n0.txt",
            "files:/new/n1.txt",
            "files:/notes/new.txt",
        ]  # kept as they were, for the next run
        assert all(
            "cannot connect" in f.reason and server.passwords[server.crawler] not in f.reason for f in report.failed
        )
        assert report.unchanged == 2 and report.removed == []  # nothing removed while items are left unread
        (kept,) = [n.reason for n in report.notes if n.file == "files"]
        assert "1 item no longer listed stays in the index" in kept  # old/obsolete.txt, until a run reads every item

        assert sources_of("obsidianwick widget", cfg, embedder) == ["files:/archive/plan.md"]
        assert sources_of("48,000 euros 2025", cfg, embedder) == ["files:/finance/budget.txt"]  # the old text stays
        everything = search("budget board codebook fax widget leave soup larkspur0", cfg, k=50, embedder=embedder)
        assert not any(w in h.chunk.text for h in everything for w in ("51,000", "tamarillo", "larkspur"))
        assert sources_of("zephyrine portal", cfg, embedder) == ["files:/hr/leave.txt"]
        assert sources_of("Trondheim rate", cfg, embedder) == ["files:/finance/rates.csv"]
        assert sources_of("brambleton codebook", cfg, embedder) == ["files:/old/obsolete.txt"]  # deleted, kept

        # Back on the same port, the next sync finishes what the failed one left.
        own.start()
        embedder.seen.clear()
        after = ingest(["files"], cfg, embedder=embedder)
        assert sorted(after.ingested) == [
            "files:/finance/budget.txt",
            "files:/new/n0.txt",
            "files:/new/n1.txt",
            "files:/notes/new.txt",
        ]
        assert after.removed == ["files:/old/obsolete.txt"]  # now that every item was read
        assert after.moved == [] and after.failed == [] and after.unchanged == 3
        assert "obsidianwick" not in " ".join(embedder.seen) and "51,000" in " ".join(embedder.seen)
        assert sources_of("larkspur0", cfg, embedder) == ["files:/new/n0.txt"]
        assert sources_of("51,000 euros 2026", cfg, embedder) == ["files:/finance/budget.txt"]
        everything = search("budget board codebook fax widget leave soup", cfg, k=50, embedder=embedder)
        assert not any("48,000" in h.chunk.text or "brambleton" in h.chunk.text for h in everything)
    finally:
        own.cleanup()


KILLED_SYNC = """
import sys
from pathlib import Path
from mmrag.pipeline import api
from mmrag.pipeline.config import load_config
from mmrag.retrieval.embed import HashEmbedder
cfg = load_config(config_file=Path(sys.argv[1]) / "mmrag.toml", index_dir=Path(sys.argv[2]), env={})
api.ingest(["files"], cfg, embedder=HashEmbedder(64))
"""


def test_a_sync_killed_mid_run_is_finished_by_the_next_one_as_a_clean_sync_would_be(
    smb_server: SmbServer, tmp_path: Path
) -> None:
    from mmrag.pipeline import api

    root = folder(smb_server, "killed")
    for path, data in smb_drive().items():
        write(root, path, data)
    cfg = make_config(tmp_path, smb_server, "killed")
    api.ingest(["files"], cfg, embedder=CountingEmbedder(64))
    api.close(cfg)
    change_the_drive(root)

    done = subprocess.run(
        [sys.executable, "-c", KILLED_SYNC, str(tmp_path), str(cfg.index_dir)],
        env={**os.environ, "MMRAG_FAULT": "sync-after-item"}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 137, done.stderr[-2000:]  # killed after the first item, not a run to the end
    killed = index_state(cfg, SMB_FIELDS)
    finished = api.ingest(["files"], cfg, embedder=CountingEmbedder(64))
    api.close(cfg)
    assert finished.failed == [] and finished.removed == ["files:/old/obsolete.txt"]
    assert finished.moved == ["files:/notes/plan.md -> files:/notes/roadmap.md"]

    clean = replace(cfg, index_dir=tmp_path / "clean-index")
    api.ingest(["files"], clean, embedder=CountingEmbedder(64))
    api.close(clean)
    assert index_state(cfg, SMB_FIELDS) == index_state(clean, SMB_FIELDS)
    assert killed != index_state(clean, SMB_FIELDS)  # the killed run had not got there by itself
