"""The meaningful words of a text, stemmed: how the reranker and the answer stage compare a question
with evidence (so "scanned" matches "scan" and "talks" matches "talk")."""

from __future__ import annotations

import functools
import re
import unicodedata

import snowballstemmer

from mmrag.retrieval.keyword import STOPWORDS

_WORD = re.compile(r"\w+", re.UNICODE)


_STEMMER = snowballstemmer.stemmer("english")


@functools.lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """The Snowball (Porter 2) English stem: "scanned" and "scan", "schedules" and "schedule",
    "congratulates" and "congratulations" meet; accents aside ("café" is "cafe", "résumé" "resume"),
    as the keyword index folds them."""
    plain = unicodedata.normalize("NFKD", word.lower())
    plain = "".join(ch for ch in plain if not unicodedata.combining(ch))
    return str(_STEMMER.stemWord(plain))


# a time adjective is its period: "daily traffic" is traffic per day ("100K hits/day")
_PERIOD = {
    "daily": "day",
    "weekly": "week",
    "monthly": "month",
    "yearly": "year",
    "annual": "year",
    "annually": "year",
    "hourly": "hour",
}


def terms(text: str) -> set[str]:
    """The stems of ``text``'s words; an identifier (``SQLITE_MAX_COLUMN``) gives its parts too."""
    words = _WORD.findall(text)
    words += [part for w in words if "_" in w for part in w.split("_")]
    return {
        stem(_PERIOD.get(w.lower(), w)) for w in words if w.lower() not in STOPWORDS and (len(w) > 1 or w.isdigit())
    }
