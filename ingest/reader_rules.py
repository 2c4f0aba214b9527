"""Who may read which files, from a rules file, for drives whose file system says nothing useful
(a share mounted with every file 0777, a bucket with no grants).

```toml
# the first rule whose pattern matches a file's name in the index decides its readers
[[rule]]
match = "hr/**"                       # globs: * within a folder, ** across folders, ? one character
readers = ["group:hr", "user:ceo"]

[[rule]]
match = "finance:/**"                 # items of the source named finance (names are NAME:/path)
readers = ["group:finance"]

[[rule]]
match = "**/drafts/**"
readers = []                          # nobody
```

A matching rule replaces what the file system or the source says; a file no rule matches keeps those.
Readers are principals as everywhere in mmrag: ``user:NAME``, ``group:NAME``, ``PUBLIC`` and deny
entries (``!user:NAME``, ``!group:NAME``). A rule for a named source may also be written against the
path inside the source (``hr/**`` matches ``finance:/hr/x.pdf`` too).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from mmrag.ingest.errors import MmragError
from mmrag.ingest.permissions import DENY, PUBLIC

_PRINCIPAL = re.compile(r"^(?:user|group):[^\s:]+$")


class RulesError(MmragError):
    """A rules file that cannot be used; the message names the file and the rule."""


@dataclass(frozen=True, slots=True)
class Rule:
    match: str
    pattern: re.Pattern[str]
    readers: tuple[str, ...]


def glob_pattern(glob: str) -> re.Pattern[str]:
    """A compiled full-match pattern for a path glob: ``*`` within a folder, ``**`` across folders."""
    out, i = [], 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(?:[^/]*/)*")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return re.compile("".join(out))


def _reader(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise RulesError(f'{where}: readers are strings such as "group:hr", got {value!r}')
    bare = value.removeprefix(DENY)
    if bare != PUBLIC and not _PRINCIPAL.match(bare):
        raise RulesError(
            f"{where}: {value!r} is not a reader (user:NAME, group:NAME, PUBLIC, or one of them after '!')"
        )
    return value


@dataclass(frozen=True, slots=True)
class ReaderRules:
    rules: tuple[Rule, ...]

    @classmethod
    def load(cls, path: Path) -> ReaderRules:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise RulesError(f"cannot read the readers rules file {path} ({e.strerror or e})") from e
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise RulesError(f"{path}: not valid TOML ({e})") from e
        unknown = set(data) - {"rule"}
        if unknown:
            raise RulesError(f"{path}: unknown setting {sorted(unknown)[0]!r} (the file holds [[rule]] tables)")
        rules = []
        for number, body in enumerate(data.get("rule", []), start=1):
            where = f"{path}, rule {number}"
            if not isinstance(body, dict) or set(body) != {"match", "readers"}:
                raise RulesError(f'{where}: a rule has exactly match = "GLOB" and readers = [...]')
            match, readers = body["match"], body["readers"]
            if not isinstance(match, str) or not match.strip():
                raise RulesError(f'{where}: match must be a glob such as "hr/**"')
            if not isinstance(readers, list):
                raise RulesError(f"{where}: readers must be a list (empty: nobody)")
            rules.append(Rule(match, glob_pattern(match.strip()), tuple(_reader(r, where) for r in readers)))
        return cls(tuple(rules))

    def readers_for(self, name: str) -> tuple[str, ...] | None:
        """The readers of the first rule matching ``name`` (or the path inside its source); None: no rule."""
        inside = name.partition(":/")[2] if ":/" in name else None
        for rule in self.rules:
            if rule.pattern.fullmatch(name) or (inside is not None and rule.pattern.fullmatch(inside)):
                return tuple(sorted(set(rule.readers)))
        return None
