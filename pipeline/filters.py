"""What a person may restrict a search to, parsed in one place for every front-end.

The CLI (``--modality``, ``--type``, ``--folder``, ``--glob``, ``--after``, ``--before``), the HTTP API
(the same names as query parameters), the MCP tools and the LangChain retriever all call
``parse_filters`` with the values as given, so they accept the same spellings and refuse the same
mistakes with the same message. ``resolve_filter`` turns the result into the store filter every
candidate search applies (folder and glob patterns become the exact set of allowed sources).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import TYPE_CHECKING

from mmrag.ingest.chunk import Modality
from mmrag.ingest.errors import MmragError

if TYPE_CHECKING:  # the CLI imports this module before any command runs: numpy stays unloaded
    from mmrag.retrieval.manifest import Manifest
    from mmrag.retrieval.store import SearchFilter


class FilterError(MmragError):
    """A filter value that cannot be used; the message names it and says what is accepted."""


@dataclass(frozen=True, slots=True)
class Filters:
    """What a user may restrict a search to. Folder and glob patterns match sources (relative paths).

    ``principals``: when set, only chunks readable by one of these principals are searched
    (document permissions; ``None`` = no permission filtering).
    """

    modalities: frozenset[Modality] = frozenset()
    kinds: frozenset[str] = frozenset()
    folders: tuple[str, ...] = ()
    globs: tuple[str, ...] = ()
    modified_after: datetime | None = None
    modified_before: datetime | None = None
    principals: frozenset[str] | None = field(default=None)


def _values(given: Iterable[str] | None) -> list[str]:
    """Repeated values and comma-separated lists alike ("pdf,docx" or two flags), blanks dropped."""
    return [part.strip() for value in given or () for part in str(value).split(",") if part.strip()]


def _plain(given: Iterable[str] | None) -> list[str]:
    """Repeated values taken whole (a folder or a pattern may contain a comma), blanks dropped."""
    return [str(value).strip() for value in given or () if str(value).strip()]


def _modalities(given: Iterable[str] | None) -> frozenset[Modality]:
    out = set()
    for name in _values(given):
        try:
            out.add(Modality(name.lower()))
        except ValueError as e:
            known = ", ".join(m.value for m in Modality)
            raise FilterError(f"unknown modality {name!r} (known: {known})") from e
    return frozenset(out)


def _when(value: str | date | None, name: str, *, end_of_day: bool) -> datetime | None:
    """A date or date-time; a bare date for ``before`` includes that whole day."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time.max if end_of_day else time.min)
    text = str(value).strip()
    try:
        when = datetime.fromisoformat(text)
    except ValueError as e:
        raise FilterError(f"{name} takes a date like 2024-01-31, got {text!r}") from e
    if end_of_day and len(text) == 10:
        when = datetime.combine(when.date(), time.max)
    return when


def parse_filters(
    *,
    modalities: Iterable[str] | None = None,
    kinds: Iterable[str] | None = None,
    folders: Iterable[str] | None = None,
    globs: Iterable[str] | None = None,
    after: str | date | None = None,
    before: str | date | None = None,
) -> Filters:
    """``Filters`` from values as a person gives them; ``FilterError`` says what is wrong with one.

    Modalities are names (text, table, image, frame, speech, moment); kinds are file types with or
    without the dot (pdf, .docx); folders are paths relative to an ingested root; ``after`` and
    ``before`` are dates (``before`` includes its whole day) or date-times.
    """
    after_when = _when(after, "after", end_of_day=False)
    before_when = _when(before, "before", end_of_day=True)
    if after_when is not None and before_when is not None and after_when > before_when:
        raise FilterError(f"after ({after}) is later than before ({before}): nothing can match")
    return Filters(
        modalities=_modalities(modalities),
        kinds=frozenset(k.lower().lstrip(".") for k in _values(kinds)),
        folders=tuple(f.strip("/") for f in _plain(folders) if f.strip("/")),
        globs=tuple(_plain(globs)),
        modified_after=after_when,
        modified_before=before_when,
    )


def resolve_filter(filters: Filters, manifest: Manifest) -> SearchFilter:
    """Turn user filters into a store filter; folder/glob patterns are resolved to sources via the manifest."""
    from mmrag.retrieval.manifest import OK
    from mmrag.retrieval.store import SearchFilter

    sources: frozenset[str] | None = None
    if filters.folders or filters.globs:
        folders = [f.strip("/") + "/" for f in filters.folders]
        sources = frozenset(
            r.source
            for r in manifest.files()
            if r.status == OK
            and (not folders or any(r.source.startswith(f) for f in folders))
            and (not filters.globs or any(fnmatch.fnmatch(r.source, g) for g in filters.globs))
        )
    return SearchFilter(
        modalities=filters.modalities,
        kinds=filters.kinds,
        sources=sources,
        modified_after=filters.modified_after,
        modified_before=filters.modified_before,
        principals=filters.principals,
    )
