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
- a re-ingest in the same process sees group membership as it is now;
- every modality, through every front-end (marked slow: OCR, speech and video frames): on a second drive
  that adds a PDF (text layer), a PPTX (slide text and a picture with a word OCR reads), a PNG with large
  text, an XLSX and CSVs (SQL questions), a speech recording and a silent video with a word on screen,
  spread over the same permission cases, each user sees in ``search``, ``search --image`` and ``ask`` (CLI),
  ``search_by_image``, the web server (search, image search, ask, /api/status, every preview, thumbnail,
  frame and file URL it hands out) and the MCP tools exactly what the OS lets them read; and every file they
  may not read, asked for by URLs made up by hand, is a 404 with the body of a file never ingested.

The recording is spoken by espeak-ng (``./bootstrap.sh test`` installs it), slowly enough for the tiny
Whisper model to hear its canary ("orange submarine") and its hidden words ("attention please"), which are
found nowhere else on the drive.
"""

from __future__ import annotations

import asyncio
import grp
import io
import json
import os
import pwd
import secrets
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from builders import build_pdf

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


def _place(path: Path, content: str | bytes, mode: int, owner: str = "root", group: str = "root") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
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


def shown(result: dict[str, Any], *mine: str) -> str:
    """Everything a result shows the user, except the words they typed themselves (and the keys ``mine``)."""
    dropped = ("query", "question", *mine)
    return json.dumps({k: v for k, v in result.items() if k not in dropped}, ensure_ascii=False)


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


@pytest.mark.parametrize("role", ROLES)
def test_a_model_asked_sees_only_what_the_user_may_read(
    role: str, indexed: Indexed, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The generative path, with a model that echoes its whole prompt back: the prompt (everything the model
    is shown) and the answer hold no word of a file the user may not read, and the readable file is in it."""
    from fakes import message_text, stub_llm

    user = account(role)
    forbidden = unreadable(indexed, user)
    problems = []
    with stub_llm() as model:
        model.replies = [lambda body: "\n".join(message_text(m["content"]) for m in body["messages"])] * 50
        monkeypatch.setenv("MMRAG_LLM_BASE_URL", model.url)
        monkeypatch.setenv("MMRAG_LLM_MODEL", "echo")
        for doc in DOCS:
            asked = len(model.requests)
            result = cli("ask", f"Which file mentions {doc.canary}?", "--as", user)
            prompts = " ".join(json.dumps(r.body) for r in model.requests[asked:])
            seen = prompts + shown(result)
            words = [w for d in forbidden for w in (d.canary, *d.hidden) if w in seen and w != doc.canary]
            if doc in forbidden and doc.canary in prompts.replace(f"Which file mentions {doc.canary}?", ""):
                words.append(doc.canary)
            if words:
                problems.append(f"ask about {doc.canary} ({doc.source}): the model or the answer saw {words}")
            shown_to_model = doc.canary in prompts.replace(f"Which file mentions {doc.canary}?", "")
            answered = shown_to_model if len(model.requests) > asked else doc.source in sources(result)
            if indexed.truth[(user, doc.source)] and not answered:  # (a computed table answer asks no model)
                problems.append(f"ask about {doc.canary}: the readable {doc.source} was not in the evidence")
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


def test_removing_an_acl_entry_takes_effect_after_one_reingest(
    accounts: None, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    drive = traversable_folder()
    try:
        doc = BY_SOURCE["acl.txt"]
        target = drive / doc.source
        _place(target, _note(doc), 0o640)
        grant_read_acl(target, DAVE)
        config_file = permissions_config(tmp_path)
        cfg = load(config_file, tmp_path / "index", tmp_path / "cfghome")
        monkeypatch.setenv("MMRAG_CONFIG", str(config_file))

        def dave_finds_it() -> bool:
            argv = ["search", doc.canary, "--as", DAVE, "--k", "50", "--index", str(cfg.index_dir), "--json"]
            return doc.source in sources(run_json(capsys, argv))

        ingest_now(drive, cfg)
        assert os_can_read(DAVE, target) and dave_finds_it()
        os.removexattr(target, "system.posix_acl_access")  # setfacl -b
        ingest_now(drive, cfg)
        assert not os_can_read(DAVE, target)
        assert not dave_finds_it(), "after the ACL entry was removed and a re-ingest dave still finds the file"
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
    for user in MEMBERSHIP:  # and the others in eng stay refused, as POSIX's group class refuses them
        assert finds(capsys, cfg, user, doc) == os_can_read(user, drive / doc.source), user


# --- every modality, through every front-end ----------------------------------------------------------
#
# A second drive: the one above plus one file per modality, each spread over the same permission cases,
# with canaries in its text layer, slide text, OCR of a picture, speech and video frames. For every user
# (and a name with no account) every front-end is asked about every canary: the CLI's search, query by
# image and ask (a SQL computation included), the web server's search, image search, ask and every
# preview, thumbnail and file URL it hands out, the URLs of unreadable files made up by hand, and the MCP
# tools. Nothing the OS refuses may show; everything it allows must be found.

REPO = Path(__file__).resolve().parents[2]
SPOKEN = "Attention please. The password is orange submarine."  # read aloud by espeak-ng at 130 words a minute


def spoken_wav(work: Path) -> bytes:
    """``SPOKEN`` as a WAV recording made by espeak-ng."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.skip("espeak-ng is not installed (./bootstrap.sh test installs it): the recording cannot be made")
    out = work / "spoken.wav"
    subprocess.run([espeak, "-s", "130", "-w", str(out), SPOKEN], check=True, capture_output=True, timeout=60)
    return out.read_bytes()
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
OCR_SAFE = "abcdefhkmnprstwxyz345678"  # no 0/o, 1/l/i, 9/g/q, u/v: read back exactly from large print
NEVER = "never-ingested"  # a folder that was never on the drive: what an unreadable file must look like


def _drawn_canary() -> str:
    return "canary" + "".join(secrets.choice(OCR_SAFE) for _ in range(8))


def _figure() -> int:
    return 9_000_000 + secrets.randbelow(999_999)


DECK_PICTURE, SIGN_WORD, BADGE_WORD, SCREEN_WORD = (_drawn_canary() for _ in range(4))
TOP_BUDGET, TOP_QUANTITY, TOP_STOCK = (_figure() for _ in range(3))


@dataclass(frozen=True, slots=True)
class Item:
    """A file of the full drive. Each canary alone finds it (in its text, slide, OCR, speech or frames); the
    canaries and the hidden words only its readers may ever see. ``picture``: the canary drawn in its
    picture or frames, which a query by a picture like it must find."""

    source: str
    canaries: tuple[str, ...]
    hidden: tuple[str, ...]
    readers: frozenset[str]
    picture: str = ""

    @property
    def words(self) -> tuple[str, ...]:
        return (*self.canaries, *self.hidden)


MEDIA = (
    Item("fin/report.pdf", (_canary(),), (_vault(),), frozenset((ALICE, CAROL))),  # group only
    Item("private/deck.pptx", (_canary(), DECK_PICTURE), (_vault(),), frozenset((ALICE,)), DECK_PICTURE),  # user only
    Item("sign.png", (SIGN_WORD,), (), frozenset((BOB, CAROL, DAVE)), SIGN_WORD),  # the group class lacks read
    Item("budget.xlsx", (_canary(),), _salary_forms(TOP_BUDGET), frozenset((DAVE,))),  # an ACL names dave
    Item("hr/townhall.wav", ("orange submarine",), ("attention please",), frozenset((BOB,))),  # group only (speech)
    Item("eng/screen.mp4", (SCREEN_WORD,), (), frozenset((ALICE,)), SCREEN_WORD),  # a folder only eng may pass
    Item("public.csv", (_canary(),), _salary_forms(TOP_QUANTITY), EVERYONE),
    Item("nox/stock.csv", (_canary(),), _salary_forms(TOP_STOCK), frozenset()),  # a folder nobody may pass
    Item("nox/badge.png", (BADGE_WORD,), (), frozenset(), BADGE_WORD),
)
FULL = (*(Item(d.source, (d.canary,), d.hidden, d.readers) for d in DOCS), *MEDIA)
BY_ITEM = {i.source: i for i in FULL}
USERS = (*MEMBERSHIP, GHOST)
ALL_ROLES = (*ROLES, "ghost")
TABLE_QUESTIONS = (  # each computed (SQL) over one table: its readers get the top figure, nobody else
    ("What is the highest Salary?", "hr/salaries.csv"),
    ("What is the highest Budget?", "budget.xlsx"),
    ("What is the highest Quantity?", "public.csv"),
    ("What is the highest Stock?", "nox/stock.csv"),
)
SERVER_TOKEN = secrets.token_hex(16)
PERSONAL = {user: secrets.token_hex(16) for user in USERS}  # one personal API token per person
URL_KEYS = ("preview", "file")


def media_canaries() -> list[tuple[Item, str]]:
    """Every canary of the files added for the modalities (the text files' are asked about above)."""
    return [(item, canary) for item in MEDIA for canary in item.canaries]


# --- generated files: small, each with its canaries -----------------------------------------------------


def drawn(word: str, font_px: int = 48, height: int = 400, min_width: int = 960) -> Any:
    """``word`` in large bold black letters amid plenty of white (a PIL image, its width a multiple of 16 as
    video encoders like): what OCR reads back exactly. Text filling most of a small picture is sometimes not
    detected at all (RapidOCR finds no box in 200 px high pictures of some words at 64-96 px)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(FONT), font_px) if FONT.is_file() else ImageFont.load_default(size=font_px)
    left, top, right, bottom = (round(v) for v in font.getbbox(word))
    margin = font_px // 2
    width = max(min_width, right - left + 2 * margin)
    picture = Image.new("RGB", (width + -width % 16, height), "white")
    ImageDraw.Draw(picture).text((margin - left, (height - top - bottom) // 2), word, fill="black", font=font)
    return picture


def png(picture: Any) -> bytes:
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()


def deck_pptx(text: str, picture: bytes) -> bytes:
    """One slide: a title, ``text`` in a text box and ``picture`` large below it."""
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[5])  # title only
    slide.shapes.title.text = "Launch plan"
    slide.shapes.add_textbox(Inches(0.5), Inches(1.5), Inches(8), Inches(1)).text_frame.text = text
    slide.shapes.add_picture(io.BytesIO(picture), Inches(0.5), Inches(3), Inches(6))
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def workbook(rows: Sequence[Sequence[object]]) -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Projects"
    for row in rows:
        sheet.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def screen_mp4(picture: Any, seconds: int = 4, fps: int = 5) -> bytes:
    """A silent MPEG-4 video showing ``picture`` (a PIL image) for ``seconds``."""
    import cv2
    import numpy as np

    frame = np.ascontiguousarray(np.asarray(picture)[:, :, ::-1])  # RGB to OpenCV's BGR
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "screen.mp4"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, picture.size)
        for _ in range(seconds * fps):
            writer.write(frame)
        writer.release()
        data = path.read_bytes() if path.is_file() else b""
    if not data:
        pytest.skip("OpenCV cannot write an MPEG-4 video here")
    return data


def _table(header: str, canary: str, top: int) -> str:
    return f"{header}\n{canary},{top}\nHarbour walk,41200\nTram depot,38900\nBike lanes,27600\n"


def legible(pictures: dict[str, Any]) -> None:
    """The OCR engine reads each drawn word back exactly, or the test's pictures (not the product) are at fault."""
    import numpy as np

    from mmrag.ingest.engines.ocr import ocr_engine

    engine = ocr_engine("rapidocr")
    assert engine is not None
    for source, picture in pictures.items():
        read = engine.read(np.asarray(picture)).strip()
        if read != BY_ITEM[source].picture:
            pytest.fail(f"OCR reads the picture of {source} as {read!r}, not {BY_ITEM[source].picture!r}: redraw it")


def build_full_drive(root: Path, queries: Path) -> dict[str, Path]:
    """The drive above plus the files of ``MEDIA``; returns, per pictured file, a query picture like it."""
    build_drive(root)
    pdf, deck, budget, public, stock = (
        BY_ITEM[s] for s in ("fin/report.pdf", "private/deck.pptx", "budget.xlsx", "public.csv", "nox/stock.csv")
    )
    report = build_pdf(
        [["Quarterly audit report.", f"The audit word is {pdf.canaries[0]}; its code is {pdf.hidden[0]}."]]
    )
    _place(root / pdf.source, report, 0o640, group=FIN)
    slide_text = f"The launch codename is {deck.canaries[0]} and its code is {deck.hidden[0]}."
    pictures = {i.source: drawn(i.picture) for i in MEDIA if i.picture}
    pictures["eng/screen.mp4"] = drawn(SCREEN_WORD, 56, height=360, min_width=640)  # a video frame's size
    legible(pictures)
    _place(root / deck.source, deck_pptx(slide_text, png(pictures[deck.source])), 0o600, owner=ALICE)
    _place(root / "sign.png", png(pictures["sign.png"]), 0o604, group=ENG)
    rows = [("Project", "Budget"), (budget.canaries[0], TOP_BUDGET), ("Harbour walk", 41200), ("Tram depot", 38900)]
    _place(root / budget.source, workbook(rows), 0o640)
    grant_read_acl(root / budget.source, DAVE)
    _place(root / "hr/townhall.wav", spoken_wav(queries.parent), 0o640, group=HR)
    _place(root / "eng/screen.mp4", screen_mp4(pictures["eng/screen.mp4"]), 0o644)
    _folder(root / "eng", 0o750, ENG)
    _place(root / public.source, _table("Item,Quantity", public.canaries[0], TOP_QUANTITY), 0o644)
    _place(root / stock.source, _table("Part,Stock", stock.canaries[0], TOP_STOCK), 0o644)
    _place(root / "nox/badge.png", png(pictures["nox/badge.png"]), 0o644)
    _folder(root / "nox", 0o744)
    queries.mkdir(parents=True, exist_ok=True)
    made = {}
    for n, (source, picture) in enumerate(pictures.items()):
        made[source] = queries / f"IMG_{n:04d}.png"  # a camera's name: no file-name words for the describer
        made[source].write_bytes(png(picture))
    return made


@dataclass(frozen=True, slots=True)
class Full:
    drive: Path
    root: str  # the drive as the index records it
    cfg: Config
    config_file: Path
    queries: dict[str, Path]  # source -> a picture like its picture or frames
    images: dict[str, tuple[str, ...]]  # source -> its stored thumbnails and frames, relative to the media folder
    truth: dict[tuple[str, str], bool]  # (user, source) -> the OS lets the user read it

    def reads(self, user: str, source: str) -> bool:
        return self.truth[(user, source)]

    def hidden_from(self, user: str) -> list[Item]:
        return [i for i in FULL if not self.reads(user, i.source)]


@pytest.fixture(scope="module")
def full(accounts: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Full]:
    from mmrag.ingest.engines.ocr import ocr_engine
    from mmrag.pipeline.app import open_app

    if ocr_engine("rapidocr") is None:
        pytest.skip("RapidOCR is not installed: the canaries in pictures and frames cannot be read")
    drive = traversable_folder()
    try:
        work = tmp_path_factory.mktemp("perm-full")
        queries = build_full_drive(drive, work / "queries")
        config_file = permissions_config(work)
        cfg = load(config_file, work / "index", work / "cfghome")
        ingest_now(drive, cfg)
        app = open_app(cfg, create=False)
        try:
            (root,) = app.manifest.roots()
            media = app.media_dir.resolve()
            images = {
                i.source: tuple(p.resolve().relative_to(media).as_posix() for p in app.keyword.images(root, i.source))
                for i in FULL
            }
        finally:
            app.close()
        truth = {(u, i.source): os_can_read(u, drive / i.source) for u in MEMBERSHIP for i in FULL}
        truth |= {(GHOST, i.source): os_stranger_can_read(drive / i.source) for i in FULL}
        yield Full(drive, root, cfg, config_file, queries, images, truth)
    finally:
        shutil.rmtree(drive, ignore_errors=True)


def leaked(full: Full, user: str, found: set[str], text: str, asked: str = "") -> list[str]:
    """Files ``user`` may not read among ``found``, and their words in ``text`` (bar ``asked``: typed by the user)."""
    hidden = full.hidden_from(user)
    files = sorted(found & {i.source for i in hidden})
    low = text.lower()
    words = sorted({w for i in hidden for w in i.words if w != asked and w.lower() in low})
    return ([f"unreadable files {files}"] if files else []) + ([f"their words {words}"] if words else [])


def presence(what: str, item: Item, word: str, hits: list[dict[str, Any]], readable: bool) -> list[str]:
    """A readable ``item`` is found by ``word`` (one of its hits shows it: not merely among all that came back);
    an unreadable one is not among the hits at all."""
    if readable and not any(h["source"] == item.source and word.lower() in str(h["text"]).lower() for h in hits):
        return [f"{what}: {item.source} is readable, but no hit of it shows {word!r}"]
    if not readable and any(h["source"] == item.source for h in hits):
        return [f"{what}: {item.source} is not readable, but it is among the hits"]
    return []


def table_answer_problems(full: Full, user: str, question: str, source: str, answer: str) -> list[str]:
    """A reader of the table gets its top figure computed; everyone else is checked by ``leaked``."""
    if full.reads(user, source) and not any(form in answer for form in BY_ITEM[source].hidden):
        return [f"{question!r}: {user} may read {source} but the answer lacks its top figure: {answer!r}"]
    return []


# --- the tests --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_full_drive_is_what_the_os_says(full: Full) -> None:
    """As designed, every modality is refused to someone and readable by someone; each file was read
    (its canaries are in the index) and each picture and video kept its thumbnail or frames."""
    from mmrag.pipeline.api import search
    from mmrag.pipeline.filters import Filters
    from mmrag.pipeline.permissions import principals_for_user

    by_os = {i.source: sorted(u for u in MEMBERSHIP if full.reads(u, i.source)) for i in FULL}
    assert by_os == {i.source: sorted(i.readers) for i in FULL}
    assert {i.source for i in FULL if full.reads(GHOST, i.source)} == {
        "public.txt",
        "grouplacks.txt",
        "sign.png",
        "public.csv",
    }
    for suffix in (".pdf", ".pptx", ".png", ".csv", ".xlsx", ".wav", ".mp4"):
        kind = [i for i in FULL if i.source.endswith(suffix)]
        assert any(i.readers for i in kind) and any(EVERYONE - i.readers for i in kind), suffix
    for source in ("private/deck.pptx", "sign.png", "eng/screen.mp4", "nox/badge.png"):
        assert full.images[source], f"{source} has no stored picture"
    # nobody but root may pass nox/: root (its owner) finds what is there, so nobody else finding it means something
    for item in (BY_ITEM["nox/stock.csv"], BY_ITEM["nox/badge.png"]):
        hits = search(item.canaries[0], full.cfg, 10, Filters(principals=principals_for_user("root")))
        assert item.source in {h.chunk.source for h in hits}, f"{item.source} was not indexed"


@pytest.mark.slow
@pytest.mark.parametrize("role", ALL_ROLES)
def test_the_command_line_shows_every_modality_exactly_as_the_os_allows(
    role: str, full: Full, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``mmrag search``, ``search --image`` and ``ask`` (extractive, SQL over tables too) ``--as USER``."""
    user = account(role)
    monkeypatch.setenv("MMRAG_CONFIG", str(full.config_file))

    def cli(*argv: str) -> dict[str, Any]:
        return run_json(capsys, [*argv, "--as", user, "--index", str(full.cfg.index_dir), "--json"])

    problems = []
    for item, canary in media_canaries():
        readable = full.reads(user, item.source)
        result = cli("search", canary, "--k", "50")
        problems += presence(f"search {canary!r}", item, canary, result["hits"], readable)
        problems += [f"search {canary!r}: {p}" for p in leaked(full, user, sources(result), shown(result))]
        answer = cli("ask", f"Which file mentions {canary}?")
        evidence = sources(answer) | sources(answer, "citations")
        problems += [f"ask {canary!r}: {p}" for p in leaked(full, user, evidence, shown(answer), asked=canary)]
        quoted = json.dumps([answer["hits"], answer["citations"]])
        problems += [f"ask {canary!r}, its evidence: {p}" for p in leaked(full, user, set(), quoted)]
        if readable and item.source not in sources(answer):
            problems.append(f"ask {canary!r}: the readable {item.source} is not among the evidence")
    for source, picture in full.queries.items():
        result = cli("search", "--image", str(picture), "--k", "20")
        item = BY_ITEM[source]
        problems += presence(
            f"search --image like {source}", item, item.picture, result["hits"], full.reads(user, source)
        )
        problems += [
            f"search --image like {source}: {p}"
            for p in leaked(full, user, sources(result), shown(result, "description"))
        ]
    for question, source in TABLE_QUESTIONS:
        answer = cli("ask", question)
        evidence = sources(answer) | sources(answer, "citations")
        problems += [f"ask {question!r}: {p}" for p in leaked(full, user, evidence, shown(answer))]
        problems += table_answer_problems(full, user, question, source, answer["answer"])
    assert problems == [], f"{user}: " + "\n".join(problems)


@pytest.mark.slow
@pytest.mark.parametrize("role", ALL_ROLES)
def test_a_query_by_image_returns_only_readable_pictures_and_frames(role: str, full: Full) -> None:
    """``search_by_image`` with the user's principals: a picture like the PNG, the slide's picture or the
    video's frame brings back that file only to its readers, and always to them."""
    from mmrag.pipeline.app import open_app
    from mmrag.pipeline.filters import Filters
    from mmrag.pipeline.image_query import search_by_image
    from mmrag.pipeline.permissions import principals_for_user

    user = account(role)
    filters = Filters(principals=principals_for_user(user))
    problems = []
    app = open_app(full.cfg, create=False)
    try:
        for source, picture in full.queries.items():
            hits = search_by_image(app, picture, 20, filters)
            found = {h.chunk.source for h in hits}
            shown_hits = [h.to_json() for h in hits]
            item = BY_ITEM[source]
            problems += presence(f"like {source}", item, item.picture, shown_hits, full.reads(user, source))
            text = json.dumps(shown_hits, ensure_ascii=False)
            problems += [f"like {source}: {p}" for p in leaked(full, user, found, text)]
    finally:
        app.close()
    assert problems == [], f"{user}: " + "\n".join(problems)


# --- the web server ---------------------------------------------------------------------------------------


@contextmanager
def served(full: Full, folder: Path) -> Iterator[Any]:
    """The web server over the full index, with the server's token and a personal token per person."""
    from fastapi.testclient import TestClient

    from mmrag.pipeline.http.app import create_app

    tokens = folder / "tokens.toml"
    tokens.write_text("[tokens]\n" + "".join(f'"{token}" = "{user}"\n' for user, token in PERSONAL.items()))
    cfg = replace(full.cfg, permissions=replace(full.cfg.permissions, tokens_file=str(tokens)))
    with TestClient(create_app(cfg, token=SERVER_TOKEN), base_url="http://127.0.0.1:8765") as client:
        yield client


def api_shown(data: dict[str, Any]) -> str:
    """What an API answer shows, except what the user sent (query, question, their picture's description)
    and the media URLs (checked by fetching them)."""

    def bare(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in item.items() if k not in URL_KEYS} for item in items]

    mine = ("query", "question", "description")
    kept = {k: bare(v) if k in ("hits", "citations") else v for k, v in data.items() if k not in mine}
    return json.dumps(kept, ensure_ascii=False)


def links(items: list[dict[str, Any]]) -> set[str]:
    return {str(item[key]) for item in items for key in URL_KEYS if item.get(key)}


def linked_source(url: str) -> str:
    return dict(parse_qsl(urlsplit(url).query)).get("source", "")


def sse_events(body: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in body.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            events.append((fields["event"], json.loads(fields.get("data", "{}"))))
    return events


def fetch_links(client: Any, full: Full, user: str, urls: set[str]) -> list[str]:
    """Every preview (PDF page, slide, table rows, thumbnail, frame, media start) and file URL handed to
    ``user``, fetched as a browser would (the signature speaks for them): each serves, each is a readable file's,
    and nothing it shows is of a file they may not read."""
    problems = []
    seen: set[tuple[str, ...]] = set()
    todo = sorted(urls)
    while todo:
        url = todo.pop()
        parts = urlsplit(url)
        key = (parts.path, *sorted(f"{k}={v}" for k, v in parse_qsl(parts.query) if k not in ("exp", "sig")))
        if key in seen:
            continue
        seen.add(key)
        source = linked_source(url)
        if not full.reads(user, source):
            problems.append(f"{url}: a URL of {source}, which {user} may not read")
        response = client.get(url)
        if response.status_code != 200:
            problems.append(f"{url}: {response.status_code} {response.text[:200]}")
            continue
        if response.headers.get("content-type", "").startswith("application/json"):
            data = response.json()
            said = json.dumps({k: v for k, v in data.items() if k not in URL_KEYS}, ensure_ascii=False)
            problems += [f"{url}: {p}" for p in leaked(full, user, set(), said)]
            if isinstance(data.get("file"), str) and data["file"]:
                todo.append(data["file"])  # a recording's preview points at the player's file URL
    return problems


PREVIEWS: tuple[dict[str, str], ...] = ({}, {"page": "1"}, {"slide": "1"}, {"rows": "1-3"}, {"start": "0"})


def refused_like_never_ingested(client: Any, full: Full, user: str) -> list[str]:
    """Every file ``user`` may not read, by URLs made up by hand (the file itself, each kind of preview, each of
    its stored pictures, and those pictures reached through a file they may read): the same 404 and body as a
    file never ingested, so its existence is not told."""
    auth = {"Authorization": f"Bearer {PERSONAL[user]}"}
    problems = []

    def compare(path: str, params: dict[str, str], never: dict[str, str]) -> None:
        got = client.get(path, params=params, headers=auth)
        expected = client.get(path, params=never, headers=auth)
        assert expected.status_code == 404, (path, never, expected.text)
        if (got.status_code, got.content) != (404, expected.content):
            kind = got.headers.get("content-type", "")
            body = got.text[:200] if kind.startswith(("application/json", "text/")) else f"{len(got.content)} bytes"
            problems.append(f"{path} {params}: {got.status_code} {kind} {body}, not 404 {expected.text}")

    for item in full.hidden_from(user):
        shapes = [
            ("/api/file", {}),
            *(("/api/preview", p) for p in PREVIEWS),
            *(("/api/preview", {"image": n}) for n in full.images[item.source]),
        ]
        never = f"{NEVER}/{Path(item.source).name}"
        for path, extra in shapes:
            compare(
                path, {"root": full.root, "source": item.source, **extra}, {"root": full.root, "source": never, **extra}
            )
        for name in full.images[item.source]:  # its thumbnail or frame through a file the user may read
            vehicle = {"root": full.root, "source": "public.txt"}
            compare("/api/preview", {**vehicle, "image": name}, {**vehicle, "image": f"{NEVER}/{Path(name).name}"})
    return problems


@pytest.mark.slow
@pytest.mark.parametrize("role", ALL_ROLES)
def test_the_web_server_shows_every_modality_exactly_as_the_os_allows(role: str, full: Full, tmp_path: Path) -> None:
    """``mmrag serve`` with the user's personal token: search, image search, ask (streamed; SQL too), every
    citation's and hit's preview, thumbnail and file URL, and the URLs of every file they may not read."""
    user = account(role)
    auth = {"Authorization": f"Bearer {PERSONAL[user]}"}
    problems = []
    handed: set[str] = set()
    with served(full, tmp_path) as client:

        def ask(question: str) -> tuple[dict[str, Any], str]:
            response = client.get("/api/ask", params={"q": question}, headers=auth)
            assert response.status_code == 200, response.text
            events = sse_events(response.text)
            answers = [data for name, data in events if name == "answer"]
            assert len(answers) == 1, f"ask {question!r} as {user}: {events}"
            return answers[0], "".join(str(data.get("text", "")) for name, data in events if name == "token")

        for item, canary in media_canaries():
            readable = full.reads(user, item.source)
            response = client.get("/api/search", params={"q": canary, "k": 50}, headers=auth)
            assert response.status_code == 200, response.text
            data = response.json()
            found = sources(data) | {linked_source(u) for u in links(data["hits"])}
            problems += presence(f"search {canary!r}", item, canary, data["hits"], readable)
            problems += [f"search {canary!r}: {p}" for p in leaked(full, user, found, api_shown(data))]
            handed |= links(data["hits"])

            answer, streamed = ask(f"Which file mentions {canary}?")
            cited = answer["hits"] + answer["citations"]
            evidence = sources(answer) | sources(answer, "citations") | {linked_source(u) for u in links(cited)}
            said = api_shown(answer) + streamed
            problems += [f"ask {canary!r}: {p}" for p in leaked(full, user, evidence, said, asked=canary)]
            quoted = json.dumps([answer["hits"], answer["citations"]])
            problems += [f"ask {canary!r}, its evidence: {p}" for p in leaked(full, user, set(), quoted)]
            if readable and item.source not in sources(answer):
                problems.append(f"ask {canary!r}: the readable {item.source} is not among the evidence")
            handed |= links(cited)

        for question, source in TABLE_QUESTIONS:
            answer, streamed = ask(question)
            cited = answer["hits"] + answer["citations"]
            evidence = sources(answer) | sources(answer, "citations") | {linked_source(u) for u in links(cited)}
            problems += [f"ask {question!r}: {p}" for p in leaked(full, user, evidence, api_shown(answer) + streamed)]
            problems += table_answer_problems(full, user, question, source, answer["answer"])
            handed |= links(cited)

        for source, picture in full.queries.items():
            upload = {"image": (picture.name, picture.read_bytes(), "image/png")}
            response = client.post("/api/search/image", params={"k": 20}, files=upload, headers=auth)
            assert response.status_code == 200, response.text
            data = response.json()
            item = BY_ITEM[source]
            problems += presence(f"image like {source}", item, item.picture, data["hits"], full.reads(user, source))
            found = sources(data) | {linked_source(u) for u in links(data["hits"])}
            problems += [f"image like {source}: {p}" for p in leaked(full, user, found, api_shown(data))]
            handed |= links(data["hits"])

        status = client.get("/api/status", headers=auth).json()
        readable_files = sum(full.reads(user, i.source) for i in FULL)
        if status["files"]["ok"] != readable_files:
            problems.append(f"/api/status counts {status['files']} files, {user} may read {readable_files}")
        problems += fetch_links(client, full, user, handed)
        problems += refused_like_never_ingested(client, full, user)
    assert problems == [], f"{user}: " + "\n".join(problems)


# --- the MCP tools ----------------------------------------------------------------------------------------


def mcp_session(full: Full, calls: Callable[[Any], Awaitable[list[Any]]]) -> list[Any]:
    """Run ``calls`` against the MCP server over the full index, in this process."""
    from mcp import Client

    from mmrag.pipeline.mcp.server import build_server

    async def main() -> list[Any]:
        async with Client(build_server(full.cfg)) as client:
            return await calls(client)

    return asyncio.run(main())


def tool_shown(result: Any) -> tuple[dict[str, Any], str]:
    """A tool result's structured content and everything it shows (text included), bar what the user sent."""
    assert not result.is_error, result
    data: dict[str, Any] = result.structured_content
    text = "\n".join(str(getattr(c, "text", "")) for c in result.content)
    return data, shown(data) + "\n" + text


@pytest.mark.slow
@pytest.mark.parametrize("role", ALL_ROLES)
def test_the_mcp_tools_show_every_modality_exactly_as_the_os_allows(
    role: str, full: Full, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``mmrag mcp`` answers as the account running it (``current_user``); each user is that account here.
    (Running the server itself under ``setpriv`` as each user would need the index and models readable by them.)"""
    from mmrag.pipeline import permissions

    user = account(role)
    monkeypatch.setattr(permissions, "current_user", lambda: user)

    async def calls(client: Any) -> list[Any]:
        out = []
        for _item, canary in media_canaries():
            out.append(await client.call_tool("search", {"query": canary, "k": 50}))
            out.append(await client.call_tool("ask", {"question": f"Which file mentions {canary}?"}))
        for question, _source in TABLE_QUESTIONS:
            out.append(await client.call_tool("ask", {"question": question}))
        return out

    results = iter(mcp_session(full, calls))
    problems = []
    for item, canary in media_canaries():
        readable = full.reads(user, item.source)
        data, text = tool_shown(next(results))
        problems += presence(f"search {canary!r}", item, canary, data["hits"], readable)
        # the readable text repeats the query (the user's own words); the hits may never hold them
        problems += [f"search {canary!r}: {p}" for p in leaked(full, user, sources(data), text, asked=canary)]
        problems += [f"search {canary!r}, its hits: {p}" for p in leaked(full, user, set(), json.dumps(data["hits"]))]
        data, text = tool_shown(next(results))
        cited = sources(data, "citations")
        problems += [f"ask {canary!r}: {p}" for p in leaked(full, user, cited, text, asked=canary)]
        quoted = json.dumps(data["citations"])
        problems += [f"ask {canary!r}, its evidence: {p}" for p in leaked(full, user, set(), quoted)]
        if readable and item.source not in cited:
            problems.append(f"ask {canary!r}: the readable {item.source} is not cited")
    for question, source in TABLE_QUESTIONS:
        data, text = tool_shown(next(results))
        problems += [f"ask {question!r}: {p}" for p in leaked(full, user, sources(data, "citations"), text)]
        problems += table_answer_problems(full, user, question, source, data["answer"])
    assert problems == [], f"{user}: " + "\n".join(problems)


@pytest.mark.slow
def test_the_mcp_tools_answer_as_the_account_running_them(full: Full) -> None:
    """Unpatched, the tools search with the principals of this process's account (root here), no more."""
    from mmrag.pipeline.api import search
    from mmrag.pipeline.filters import Filters
    from mmrag.pipeline.permissions import current_user, principals_for_user

    assert current_user() == "root"
    canaries = [canary for item in FULL for canary in item.canaries]

    async def calls(client: Any) -> list[Any]:
        return [await client.call_tool("search", {"query": canary, "k": 50}) for canary in canaries]

    mine = Filters(principals=principals_for_user("root"))
    for canary, result in zip(canaries, mcp_session(full, calls), strict=True):
        data, _ = tool_shown(result)
        expected = {h.chunk.source for h in search(canary, full.cfg, 50, mine)}
        assert sources(data) == expected, f"search {canary!r} through MCP as root"
