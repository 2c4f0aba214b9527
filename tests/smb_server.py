"""A real Samba server (``smbd``) on 127.0.0.1 for the SMB source: started once per test session, on a free
port, with its own smb.conf, databases and share in a temporary folder, so nothing of the machine's own Samba
is read or changed.

The share ``[drive]`` is ``share`` on disk. Samba opens files as the logged-on user, so what a user may read
over SMB is what the kernel lets that Unix account read, and the security descriptors it reports are made from
the files' modes and POSIX ACLs. The accounts are real: two people (``mmragsmb1``, ``mmragsmb2``) and a crawler
(``mmragsmbsvc``, an ``admin user`` of the share: it reads everything, as a backup account would). Accounts the
fixture had to create are removed at the end. It needs root (smbd, useradd) and is skipped without it.

Use it from a test module with ``from smb_server import smb_server  # noqa: F401``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mmrag.pipeline.bench.common import free_port

SMBD = "/usr/sbin/smbd"
PEOPLE = ("mmragsmb1", "mmragsmb2")
CRAWLER = "mmragsmbsvc"
SHARE = "drive"


@dataclass(frozen=True)
class SmbServer:
    host: str
    port: int
    share: Path  # the share's folder on disk
    passwords: dict[str, str]  # account -> its Samba password
    crawler: str  # the account that may read everything on the share
    conf: Path  # its smb.conf (for smbstatus, smbpasswd)
    log: Path

    @property
    def users(self) -> tuple[str, ...]:
        return PEOPLE

    def url(self, folder: str = "") -> str:
        return f"smb://{self.host}:{self.port}/{SHARE}/{folder}".rstrip("/")


def _config(top: Path, port: int) -> str:
    dirs = {
        name: top / name for name in ("private", "lock", "state", "cache", "pid", "ncalrpc", "binddns", "usershares")
    }
    for path in dirs.values():
        path.mkdir(mode=0o700)
    return f"""[global]
    server role = standalone server
    interfaces = lo
    bind interfaces only = yes
    smb ports = {port}
    disable netbios = yes
    server min protocol = SMB2
    load printers = no
    printing = bsd
    printcap name = /dev/null
    disable spoolss = yes
    map to guest = never
    passdb backend = tdbsam
    private dir = {dirs["private"]}
    lock directory = {dirs["lock"]}
    state directory = {dirs["state"]}
    cache directory = {dirs["cache"]}
    pid directory = {dirs["pid"]}
    ncalrpc dir = {dirs["ncalrpc"]}
    binddns dir = {dirs["binddns"]}
    usershare path = {dirs["usershares"]}
    log file = {top}/log.%m
    log level = 1

[{SHARE}]
    path = {top}/share
    read only = no
    admin users = {CRAWLER}
"""


def _add_account(name: str, conf: Path, password: str) -> bool:
    """Make sure the Unix account exists and has this Samba password; True when it was created here."""
    created = subprocess.run(["id", name], capture_output=True).returncode != 0
    if created:
        subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
    subprocess.run(
        ["smbpasswd", "-a", "-s", "-c", str(conf), name],
        input=f"{password}\n{password}\n",
        text=True,
        check=True,
        capture_output=True,
    )
    return created


def _wait_for(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError as e:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"smbd did not start: {log.read_text()[-2000:]}") from e
            time.sleep(0.1)


def _stop(pid_file: Path) -> None:
    """Stop a daemon smbd started on demand (samba-dcerpcd leaves smbd's session): by the pid it wrote."""
    with contextlib.suppress(OSError, ValueError):  # not started, or already gone
        os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)


@pytest.fixture(scope="session")
def smb_server() -> Iterator[SmbServer]:
    if not Path(SMBD).exists() or shutil.which("smbpasswd") is None:
        pytest.skip(f"Samba is not installed ({SMBD} and smbpasswd are needed)")
    if os.geteuid() != 0:
        pytest.skip("the SMB tests run smbd and create Unix accounts: they need root")
    top = Path(tempfile.mkdtemp(prefix="mmrag-smb-", dir="/tmp"))
    top.chmod(0o755)  # the test accounts must pass through it to reach the share, as on a real server
    (top / "share").mkdir(mode=0o755)
    port = free_port()
    conf = top / "smb.conf"
    conf.write_text(_config(top, port))
    passwords = {name: f"pw-{name}-{os.urandom(4).hex()}" for name in (*PEOPLE, CRAWLER)}
    created = [name for name, password in passwords.items() if _add_account(name, conf, password)]
    log = top / "smbd.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [SMBD, "--foreground", "--no-process-group", "--debug-stdout", "-s", str(conf)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its children (one per client) share its process group: stopped together
        )
    try:
        _wait_for(port, proc, log)
        yield SmbServer("127.0.0.1", port, top / "share", passwords, CRAWLER, conf, log)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        _stop(top / "pid" / "samba-dcerpcd.pid")
        for name in created:
            subprocess.run(["userdel", name], capture_output=True)
        shutil.rmtree(top, ignore_errors=True)
