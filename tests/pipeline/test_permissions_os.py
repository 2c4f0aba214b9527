"""Document permissions, checked against the operating system itself: nothing a user cannot read leaks.

With ``[permissions] enabled = true`` an ingest records who may read each file (POSIX mode bits of the
file, the execute bits of every folder above it, POSIX ACLs), and ``search``/``ask --as USER`` show
only what that user may read. The expected answer is not written down here: it is asked of the kernel.
For every user and file, ``setpriv --reuid=USER --init-groups cat FILE`` succeeds exactly when USER can
read FILE, so a mistake in our model of POSIX (the group class that lacks ``r`` although "other" has it,
an ACL's named user, a folder without ``x``) shows up as a difference from what the OS does.

The test creates real accounts and groups (names carry a random tag, so parallel runs do not meet) and
removes them when the module ends, pass or fail. It needs root, ``setpriv`` and the shadow utilities;
elsewhere it is skipped. The drive lives in a fresh folder under /tmp (1777) made 0755, so every
ancestor lets everyone pass and only the permissions set here decide.

What it proves:
- every search and ask result, for every user, holds only files the OS lets that user read, and each
  readable file is found by its canary word;
- a table question (SQL over a CSV) computes only over tables the user may read;
- a user name with no account sees only what "other" may read (fail closed);
- a chmod takes effect after one re-ingest, both ways;
- leaving a group takes effect at once, without a re-ingest (membership is resolved at query time);
- POSIX's order of classes holds: an ACL entry naming the owner does not override the owner class, and the
  owner is not refused by the group class (the latter fails closed, so it is an expected failure for now);
- a re-ingest in the same process sees group membership as it is now.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import secrets
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mmrag.pipeline.cli import main
from mmrag.pipeline.config import Config, load_config

TOOLS = ("setpriv", "useradd", "userdel", "groupadd", "groupdel", "gpasswd")
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="creates OS users and groups: needs root"),
    pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS), reason=f"needs the OS tools {', '.join(TOOLS)}"),
]

TAG = secrets.token_hex(2)


def account(role: str) -> str:
    return f"mmt{TAG}_{role}"


ALICE, BOB, CAROL, DAVE = (account(r) for r in ("alice", "bob", "carol", "dave"))
FIN, HR, ENG = (account(g) for g in ("fin", "hr", "eng"))
GHOST = account("ghost")  # never created: a name the system does not know
MEMBERSHIP = {ALICE: (FIN, ENG), BOB: (HR,), CAROL: (FIN,), DAVE: ()}
ROLES = ("alice", "bob", "carol", "dave")

# Linux system.posix_acl_access: u32 version 2, then (u16 tag, u16 perm, u32 id) entries, little-endian
ACL_USER_OBJ, ACL_USER, ACL_GROUP_OBJ, ACL_MASK, ACL_OTHER = 0x01, 0x02, 0x04, 0x10, 0x20
ACL_UNDEFINED_ID = 0xFFFFFFFF
TOP_SALARY = 900_000 + secrets.randbelow(99_999)


@dataclass(frozen=True, slots=True)
class Doc:
    """One file of the drive: the word that finds it, a word only its readers may ever see, who reads it."""

    source: str
    canary: str
    hidden: tuple[str, ...]
    readers: frozenset[str]  # the scenario as designed; the tests use what the OS says


def _canary() -> str:
    return f"canary{secrets.token_hex(4)}"


def _vault() -> str:
    return f"vault{secrets.token_hex(4)}"


def _salary_forms(value: int) -> tuple[str, ...]:
    return (str(value), f"{value:,}", f"{value:,}".replace(",", " "), f"{value:,}".replace(",", "."))


EVERYONE = frozenset((ALICE, BOB, CAROL, DAVE))
DOCS = (
    Doc("public.txt", _canary(), (_vault(),), EVERYONE),
    Doc("fin/only.txt", _canary(), (_vault(),), frozenset((ALICE, CAROL))),
    Doc("hr/salaries.csv", _canary(), _salary_forms(TOP_SALARY), frozenset((BOB,))),
    Doc("private/alice.txt", _canary(), (_vault(),), frozenset((ALICE,))),
    Doc("grouplacks.txt", _canary(), (_vault(),), frozenset((BOB, CAROL, DAVE))),
    Doc("acl.txt", _canary(), (_vault(),), frozenset((DAVE,))),
    Doc("nox/inside.txt", _canary(), (_vault(),), frozenset()),
)
BY_SOURCE = {d.source: d for d in DOCS}


# --- accounts ---------------------------------------------------------------------------------------


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True)


def _quiet(*argv: str) -> None:
    subprocess.run(argv, check=False, capture_output=True)


@pytest.fixture(scope="module")
def accounts() -> Iterator[None]:
    """Groups fin, hr, eng; each user with a primary group of its own name and the memberships above."""
    groups = [FIN, HR, ENG, *MEMBERSHIP]
    try:
        for group in groups:
            _run("groupadd", group)
        for user, extra in MEMBERSHIP.items():
            more = ["-G", ",".join(extra)] if extra else []
            _run("useradd", "-M", "-N", "-g", user, *more, "-s", "/usr/sbin/nologin", user)
        yield
    finally:
        for user in MEMBERSHIP:
            _quiet("userdel", user)
        for group in groups:
            _quiet("groupdel", group)


def os_can_read(user: str, path: Path) -> bool:
    """The ground truth: the kernel's own answer for ``user`` with all their groups, as they are now."""
    entry = pwd.getpwnam(user)
    argv = ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups", "cat", str(path)]
    return subprocess.run(argv, capture_output=True).returncode == 0


def os_stranger_can_read(path: Path) -> bool:
    """What a uid with no account and no groups may read: only what "other" allows."""
    uid = next(u for u in range(3_000_000_000, 3_000_001_000) if _free_id(u))
    argv = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "cat", str(path)]
    return subprocess.run(argv, capture_output=True).returncode == 0


def _free_id(n: int) -> bool:
    try:
        pwd.getpwuid(n)
    except KeyError:
        try:
            grp.getgrgid(n)
        except KeyError:
            return True
    return False


# --- the drive --------------------------------------------------------------------------------------


def traversable_folder() -> Path:
    """A fresh folder under /tmp that everyone may pass, so only the permissions set below it count."""
    folder = Path(tempfile.mkdtemp(prefix="mmrag-perm-", dir="/tmp"))
    folder.chmod(0o755)
    return folder


def _place(path: Path, text: str, mode: int, owner: str = "root", group: str = "root") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chown(path, pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid)
    path.chmod(mode)


def _folder(path: Path, mode: int, group: str = "root") -> None:
    os.chown(path, 0, grp.getgrnam(group).gr_gid)
    path.chmod(mode)


def _note(doc: Doc) -> str:
    return f"This note is kept for the records. Its canary word is {doc.canary} and its code is {doc.hidden[0]}.\n"


def _salaries(doc: Doc) -> str:
    return f"Name,Salary\n{doc.canary},{TOP_SALARY}\nJordan Smith,51200\nPriya Patel,48700\nLena Berg,62300\n"


def grant_read_acl(path: Path, user: str, owner_bits: int = 6) -> None:
    """``setfacl -m u:USER:r`` on a 0640 file, written as the raw xattr (setfacl may not be installed)."""
    entries = [
        (ACL_USER_OBJ, owner_bits, ACL_UNDEFINED_ID),
        (ACL_USER, 4, pwd.getpwnam(user).pw_uid),
        (ACL_GROUP_OBJ, 4, ACL_UNDEFINED_ID),
        (ACL_MASK, 4, ACL_UNDEFINED_ID),
        (ACL_OTHER, 0, ACL_UNDEFINED_ID),
    ]
    raw = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)
    try:
        os.setxattr(path, "system.posix_acl_access", raw)
    except OSError as e:
        pytest.skip(f"this file system does not take POSIX ACLs ({e})")


def build_drive(root: Path) -> None:
    docs = {d.source: d for d in DOCS}
    _place(root / "public.txt", _note(docs["public.txt"]), 0o644)
    _place(root / "fin/only.txt", _note(docs["fin/only.txt"]), 0o640, group=FIN)
    _folder(root / "fin", 0o750, FIN)
    _place(root / "hr/salaries.csv", _salaries(docs["hr/salaries.csv"]), 0o640, group=HR)
    _folder(root / "hr", 0o750, HR)
    _place(root / "private/alice.txt", _note(docs["private/alice.txt"]), 0o600, owner=ALICE)
    _folder(root / "private", 0o755)
    _place(root / "grouplacks.txt", _note(docs["grouplacks.txt"]), 0o604, group=ENG)
    _place(root / "acl.txt", _note(docs["acl.txt"]), 0o640)
    grant_read_acl(root / "acl.txt", DAVE)
    _place(root / "nox/inside.txt", _note(docs["nox/inside.txt"]), 0o644)
    _folder(root / "nox", 0o744)  # the listing is readable, but nobody except root may pass


def permissions_config(folder: Path) -> Path:
    path = folder / "config.toml"
    path.write_text("[permissions]\nenabled = true\n")
    return path


def load(config_file: Path, index_dir: Path, home: Path) -> Config:
    return load_config(config_file=config_file, index_dir=index_dir, env={"XDG_CONFIG_HOME": str(home)})


def ingest_now(drive: Path, cfg: Config) -> None:
    """Ingest as root (who reads everything), then close the index so the CLI opens what was written."""
    from mmrag.pipeline import api

    report = api.ingest([drive], cfg)
    api.close()
    assert report.skipped == [], report.skipped


@dataclass(frozen=True, slots=True)
class Indexed:
    drive: Path
    index: Path
    config_file: Path
    truth: dict[tuple[str, str], bool]  # (user, source) -> the OS lets the user read it


@pytest.fixture(scope="module")
def indexed(accounts: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Indexed]:
    drive = traversable_folder()
    try:
        build_drive(drive)
        work = tmp_path_factory.mktemp("perm-index")
        config_file = permissions_config(work)
        ingest_now(drive, load(config_file, work / "index", work / "cfghome"))
        truth = {(u, d.source): os_can_read(u, drive / d.source) for u in MEMBERSHIP for d in DOCS}
        yield Indexed(drive, work / "index", config_file, truth)
    finally:
        shutil.rmtree(drive, ignore_errors=True)


Cli = Callable[..., dict[str, Any]]


@pytest.fixture
def cli(indexed: Indexed, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """``cli("search", QUERY, "--as", USER, ...)``: the command's JSON, against the module's index."""
    monkeypatch.setenv("MMRAG_CONFIG", str(indexed.config_file))
    return lambda *argv, index=indexed.index: run_json(capsys, [*argv, "--index", str(index), "--json"])


def run_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict[str, Any]:
    code = main(argv)
    out = capsys.readouterr()
    assert code == 0, f"mmrag {' '.join(argv)} exited {code}: {out.err}"
    return json.loads(out.out)  # type: ignore[no-any-return]


def sources(result: dict[str, Any], key: str = "hits") -> set[str]:
    return {str(item["source"]) for item in result[key]}


def shown(result: dict[str, Any]) -> str:
    """Everything a result shows the user, except the words they typed themselves."""
    return json.dumps({k: v for k, v in result.items() if k not in ("query", "question")}, ensure_ascii=False)


def unreadable(indexed: Indexed, user: str) -> list[Doc]:
    return [d for d in DOCS if not indexed.truth[(user, d.source)]]


# --- the tests --------------------------------------------------------------------------------------


def test_the_drive_is_what_the_os_says(indexed: Indexed) -> None:
    """The scenario as designed matches the kernel (else the rest would test a different drive)."""
    by_os = {d.source: sorted(u for u in MEMBERSHIP if indexed.truth[(u, d.source)]) for d in DOCS}
    assert by_os == {d.source: sorted(d.readers) for d in DOCS}


def test_principals_are_the_user_and_their_os_groups(accounts: None) -> None:
    from mmrag.pipeline.permissions import principals_for_user

    for user in MEMBERSHIP:
        groups = subprocess.run(["id", "-Gn", user], capture_output=True, text=True, check=True).stdout.split()
        assert principals_for_user(user) == {f"user:{user}", "PUBLIC", *(f"group:{g}" for g in groups)}
    assert f"group:{ALICE}" in principals_for_user(ALICE)  # the primary group counts too
    assert principals_for_user(GHOST) == {"PUBLIC"}


@pytest.mark.parametrize("role", ROLES)
def test_search_shows_exactly_what_the_os_lets_the_user_read(role: str, indexed: Indexed, cli: Cli) -> None:
    user = account(role)
    forbidden = unreadable(indexed, user)
    problems = []
    for doc in DOCS:
        result = cli("search", doc.canary, "--as", user, "--k", "50")
        found = sources(result)
        if (doc.source in found) != indexed.truth[(user, doc.source)]:
            readable = indexed.truth[(user, doc.source)]
            problems.append(
                f"search {doc.canary}: {doc.source} found={not readable}, but the OS says readable={readable}"
            )
        leaked = found & {d.source for d in forbidden}
        text = shown(result)
        words = [w for d in forbidden for w in (d.canary, *d.hidden) if w in text and w != doc.canary]
        if leaked or words:
            problems.append(f"search {doc.canary}: unreadable sources {sorted(leaked)}, words {words}")
    assert problems == [], f"{user}: " + "\n".join(problems)


@pytest.mark.parametrize("role", ROLES)
def test_ask_cites_and_quotes_only_what_the_user_may_read(role: str, indexed: Indexed, cli: Cli) -> None:
    user = account(role)
    forbidden = unreadable(indexed, user)
    problems = []
    for doc in DOCS:
        result = cli("ask", f"Which file mentions {doc.canary}?", "--as", user)
        evidence = sources(result) | sources(result, "citations")
        leaked = evidence & {d.source for d in forbidden}
        text = shown(result)
        words = [w for d in forbidden for w in d.hidden if w in text]
        words += [d.canary for d in forbidden if d.canary in text and d.canary != doc.canary]
        if doc in forbidden and doc.canary in json.dumps([result["hits"], result["citations"]]):
            words.append(doc.canary)
        if leaked or words:
            problems.append(
                f"ask about {doc.canary} ({doc.source}): unreadable sources {sorted(leaked)}, words {words}"
            )
        if indexed.truth[(user, doc.source)] and doc.source not in sources(result):
            problems.append(f"ask about {doc.canary}: the readable {doc.source} is not among the evidence")
    assert problems == [], f"{user}: " + "\n".join(problems)


def test_a_table_question_computes_only_over_readable_tables(indexed: Indexed, cli: Cli) -> None:
    csv = BY_SOURCE["hr/salaries.csv"]
    assert indexed.truth[(BOB, csv.source)] and not indexed.truth[(DAVE, csv.source)]
    question = "What is the highest Salary?"
    bob = cli("ask", question, "--as", BOB)
    assert any(form in bob["answer"] for form in csv.hidden), f"bob may read the table: {bob['answer']!r}"
    dave = cli("ask", question, "--as", DAVE)
    text = shown(dave)
    assert not [w for w in (csv.canary, *csv.hidden) if w in text], f"dave was shown the table: {text}"
    assert csv.source not in sources(dave) | sources(dave, "citations")


def test_a_name_without_an_account_sees_only_what_everyone_may_read(indexed: Indexed, cli: Cli) -> None:
    from mmrag.pipeline.permissions import principals_for_user

    assert principals_for_user(GHOST) == {"PUBLIC"}
    public = {d.source for d in DOCS if os_stranger_can_read(indexed.drive / d.source)}
    assert public == {"public.txt", "grouplacks.txt"}
    for doc in DOCS:
        found = sources(cli("search", doc.canary, "--as", GHOST, "--k", "50"))
        assert found <= public, f"search {doc.canary} as {GHOST}: {sorted(found - public)} are not public"
        assert (doc.source in found) == (doc.source in public), f"search {doc.canary} as {GHOST}: {sorted(found)}"


def test_a_chmod_takes_effect_after_one_reingest(
    accounts: None, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    drive = traversable_folder()
    try:
        doc = BY_SOURCE["private/alice.txt"]
        target = drive / doc.source
        _place(target, _note(doc), 0o600, owner=ALICE)
        _place(drive / "public.txt", _note(BY_SOURCE["public.txt"]), 0o644)
        config_file = permissions_config(tmp_path)
        cfg = load(config_file, tmp_path / "index", tmp_path / "cfghome")
        monkeypatch.setenv("MMRAG_CONFIG", str(config_file))

        def bob_finds_it() -> bool:
            argv = ["search", doc.canary, "--as", BOB, "--k", "50", "--index", str(cfg.index_dir), "--json"]
            return doc.source in sources(run_json(capsys, argv))

        ingest_now(drive, cfg)
        assert not os_can_read(BOB, target) and not bob_finds_it()
        target.chmod(0o644)
        ingest_now(drive, cfg)
        assert os_can_read(BOB, target)
        assert bob_finds_it(), "after chmod 0644 and a re-ingest bob should find the file"
        target.chmod(0o600)
        ingest_now(drive, cfg)
        assert not os_can_read(BOB, target)
        assert not bob_finds_it(), "after chmod 0600 and a re-ingest bob still finds the file"
    finally:
        shutil.rmtree(drive, ignore_errors=True)


def test_leaving_a_group_takes_effect_without_reingest(indexed: Indexed, cli: Cli) -> None:
    from mmrag.pipeline.permissions import principals_for_user

    doc = BY_SOURCE["fin/only.txt"]
    path = indexed.drive / doc.source
    assert os_can_read(CAROL, path) and doc.source in sources(cli("search", doc.canary, "--as", CAROL, "--k", "50"))
    _run("gpasswd", "-d", CAROL, FIN)
    try:
        assert not os_can_read(CAROL, path)
        assert f"group:{FIN}" not in principals_for_user(CAROL)
        found = sources(cli("search", doc.canary, "--as", CAROL, "--k", "50"))
        assert doc.source not in found, "carol left the group but still finds its file"
    finally:
        _run("gpasswd", "-a", CAROL, FIN)
    assert os_can_read(CAROL, path)
    assert doc.source in sources(cli("search", doc.canary, "--as", CAROL, "--k", "50")), "carol rejoined the group"


# --- cases beyond the main drive, each on a drive and index of its own ------------------------------


@pytest.fixture
def own_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Config]]:
    """A fresh traversable drive folder and a permissions-on config with its own index; the CLI uses it."""
    drive = traversable_folder()
    config_file = permissions_config(tmp_path)
    monkeypatch.setenv("MMRAG_CONFIG", str(config_file))
    try:
        yield drive, load(config_file, tmp_path / "index", tmp_path / "cfghome")
    finally:
        shutil.rmtree(drive, ignore_errors=True)


def finds(capsys: pytest.CaptureFixture[str], cfg: Config, user: str, doc: Doc) -> bool:
    argv = ["search", doc.canary, "--as", user, "--k", "50", "--index", str(cfg.index_dir), "--json"]
    return doc.source in sources(run_json(capsys, argv))


def test_an_acl_entry_naming_the_owner_does_not_let_the_owner_read(
    accounts: None, own_index: tuple[Path, Config], capsys: pytest.CaptureFixture[str]
) -> None:
    """POSIX asks the owner class first: a named-user entry for the owner is never consulted. A file given
    ``u:dave:r`` and then chowned to dave, with no owner ``r``, is closed to dave."""
    drive, cfg = own_index
    doc = Doc("handed-over.txt", _canary(), (_vault(),), frozenset())
    _place(drive / doc.source, _note(doc), 0o040)
    grant_read_acl(drive / doc.source, DAVE, owner_bits=0)
    os.chown(drive / doc.source, pwd.getpwnam(DAVE).pw_uid, 0)
    ingest_now(drive, cfg)
    assert not os_can_read(DAVE, drive / doc.source)
    shown_to_dave = finds(capsys, cfg, DAVE, doc)
    assert not shown_to_dave, "the OS refuses dave (owner class ---) but search shows him the file"


def test_a_reingest_after_leaving_a_group_closes_a_file_named_for_its_owner(
    accounts: None, own_index: tuple[Path, Config], capsys: pytest.CaptureFixture[str]
) -> None:
    """Carol's own 0600 file in a folder only fin may pass: readable while she is in fin. Its readers are
    stored as ``user:carol`` (her fin membership at ingest time), so leaving fin needs a re-ingest, and
    that re-ingest, in the same process, must see her groups as they are now."""
    drive, cfg = own_index
    doc = Doc("team/carol.txt", _canary(), (_vault(),), frozenset((CAROL,)))
    _place(drive / doc.source, _note(doc), 0o600, owner=CAROL)
    _folder(drive / "team", 0o750, FIN)
    ingest_now(drive, cfg)
    assert os_can_read(CAROL, drive / doc.source) and finds(capsys, cfg, CAROL, doc)
    _run("gpasswd", "-d", CAROL, FIN)
    try:
        ingest_now(drive, cfg)
        assert not os_can_read(CAROL, drive / doc.source)
        shown_to_carol = finds(capsys, cfg, CAROL, doc)
        assert not shown_to_carol, "carol left fin and the drive was re-ingested, yet she finds it"
    finally:
        _run("gpasswd", "-a", CAROL, FIN)


@pytest.mark.xfail(
    strict=True,
    reason="fails closed, not a leak: a group deny entry also hides the file from its owner, whom POSIX asks "
    "first (the owner class wins over the group class)",
)
def test_the_owner_reads_a_file_whose_group_class_lacks_read(
    accounts: None, own_index: tuple[Path, Config], capsys: pytest.CaptureFixture[str]
) -> None:
    drive, cfg = own_index
    doc = Doc("mine-but-eng-lacks.txt", _canary(), (_vault(),), frozenset(EVERYONE))
    _place(drive / doc.source, _note(doc), 0o604, owner=ALICE, group=ENG)
    ingest_now(drive, cfg)
    assert os_can_read(ALICE, drive / doc.source)
    shown_to_alice = finds(capsys, cfg, ALICE, doc)
    assert shown_to_alice, "alice owns the file and may read it, but search hides it from her"
