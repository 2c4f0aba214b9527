"""Prompt templates as files, rendered with checked variables.

Each template is a ``prompts/<name>.md`` file. Placeholders use ``string.Template`` syntax:
``$name`` or ``${name}``; ``$$`` is a literal dollar sign. This syntax was chosen over ``{name}``
because prompts quote JSON, SQL and code, whose braces would otherwise need escaping. A leading
HTML comment (``<!-- ... -->``) documents the template's variables and is not part of the prompt.

``render`` fails loudly (``PromptError``) on a missing variable, an unused one, or a malformed
placeholder, so a template and its caller cannot drift apart silently. Values are substituted in
one pass: a ``$question`` inside a document's text is never expanded.

Document text is untrusted. ``quote_data`` wraps it between delimiters that carry a random boundary
(``new_boundary``), which the text itself cannot forge, so the system prompt can tell the model that
everything between them is data to read, never instructions to follow.
"""

from __future__ import annotations

import re
import secrets
from functools import cache
from importlib import resources
from string import Template

from mmrag.ingest.errors import MmragError

PACKAGE = "mmrag.prompts"
SUFFIX = ".md"
_HEADER = re.compile(r"\A\s*<!--.*?-->[ \t]*\n?", re.DOTALL)


class PromptError(MmragError):
    """A template that cannot be rendered with the given variables; the message names both."""


@cache
def _source(name: str) -> str:
    resource = resources.files(PACKAGE).joinpath(name + SUFFIX)
    if not resource.is_file():
        raise PromptError(f"no prompt template {name!r} (expected {PACKAGE}/{name}{SUFFIX}; known: {names()})")
    return _HEADER.sub("", resource.read_text(encoding="utf-8"), count=1)


def names() -> list[str]:
    """The names of all templates in the package, sorted."""
    return sorted(
        entry.name[: -len(SUFFIX)]
        for entry in resources.files(PACKAGE).iterdir()
        if entry.is_file() and entry.name.endswith(SUFFIX)
    )


def variables(name: str) -> frozenset[str]:
    """The placeholders a template uses (``PromptError`` if one is malformed)."""
    template = Template(_source(name))
    for match in template.pattern.finditer(template.template):
        if match.group("invalid") is not None:
            line = template.template.count("\n", 0, match.start()) + 1
            snippet = template.template[match.start() : match.start() + 12]
            raise PromptError(
                f"prompt {name!r}, line {line}: malformed placeholder {snippet!r} (write $$ for a dollar)"
            )
    return frozenset(template.get_identifiers())


def render(name: str, /, **values: str) -> str:
    """The template ``name`` with every placeholder replaced; all and only its variables must be given."""
    expected = variables(name)
    missing = sorted(expected - values.keys())
    unused = sorted(values.keys() - expected)
    if missing or unused:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if unused:
            parts.append(f"unused {', '.join(unused)}")
        raise PromptError(f"prompt {name!r}: {'; '.join(parts)} (it uses: {', '.join(sorted(expected)) or 'none'})")
    return Template(_source(name)).substitute(values)


def new_boundary() -> str:
    """A random token for data delimiters, fresh per request so a document cannot forge the end marker."""
    return secrets.token_hex(6)


def quote_data(text: str, boundary: str) -> str:
    """``text`` between BEGIN/END DATA delimiters carrying ``boundary``.

    The boundary is removed from the text first (it is random, so this only matters for a
    document that has seen a previous prompt), so the only end marker is the real one.
    """
    clean = text.replace(boundary, "")
    return f"<<<BEGIN DATA {boundary}>>>\n{clean}\n<<<END DATA {boundary}>>>"
