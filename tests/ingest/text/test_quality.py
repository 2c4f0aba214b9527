"""The junk detector for text layers: readable text in any script passes, clear junk does not."""

from __future__ import annotations

import pytest

from mmrag.ingest.text.quality import looks_garbled, text_quality

READABLE = {
    "english": "The quarterly report shows revenue grew 12 percent, driven by strong sales in Lyon.",
    "german": "Die Geschäftsstelle in München schließt am Freitag um 17 Uhr. Angstschweiß ist kein Grund.",
    "french": "Le théâtre de l'Odéon présente une œuvre très appréciée à Paris.",
    "russian": "Квартальный отчёт показывает рост выручки на двенадцать процентов.",
    "chinese": "季度报告显示第三季度收入增长了百分之十二。",
    "figures": "2019 2020 2021\n120 130 150\n80 95 110\n1,234.50 EUR 12.5%",
    "contents": "Introduction ........................ 1\nMethods ............................. 4",
    "part numbers": "XK-2231 QZT-88 PLM-1200 RRT-3 ZZW-9910 KLT-400",
    "symbol-font bullets": "\uf0b7 Revenue up 12 percent\n\uf0b7 New office in Lyon\n\uf0b7 Twelve engineers hired",
    "hyphen marks": "A con\ufffefirming exam\ufffeple",
    "empty": "",
}

JUNK = {
    "private use area": "".join(chr(0xE000 + i % 60) for i in range(80)),
    "replacement characters": "\ufffd" * 30 + " abc",
    "control codes": "".join(chr(1 + i % 20) for i in range(60)),
    "unassigned code points": "\U000e0fff\U0003ffff " * 20,
    "mixed-case letter soup": "xKqZ rTpMb QwEr ZxCvBn mNbVcX LkJh gFdSa PoIuYt " * 3,
    "consonant soup": "bcdfg hjklm npqrs tvwxz bbcdd ffghh jkklm " * 3,
    "symbol soup": "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~" * 3,
}


@pytest.mark.parametrize("name", READABLE)
def test_readable_text_is_not_junk(name: str) -> None:
    assert not looks_garbled(READABLE[name]), text_quality(READABLE[name])


@pytest.mark.parametrize("name", JUNK)
def test_clear_junk_is_junk(name: str) -> None:
    assert looks_garbled(JUNK[name]), text_quality(JUNK[name])


def test_measures() -> None:
    prose = text_quality("Revenue grew 12 percent.")
    assert prose.readable == 1.0 and prose.odd == 0.0 and prose.chars == 21
    private = text_quality("\ue049\ue06e\ue076 4711")
    assert private.odd == pytest.approx(3 / 7) and private.readable == pytest.approx(4 / 7)
