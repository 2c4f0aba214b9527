"""Spreadsheet cell values as the spreadsheet shows them: 1186 with ``#,##0`` is "1,186".

A person quotes what they see ("revenue was 12,553", "(81)", "52.9%"), and citations are checked
against the sheet, so indexed text follows the cell's number format where that is well defined:
thousands separators, fixed decimals, percent, scaling, currency and literal text, the
positive;negative;zero;text sections, scientific notation, and dates. Anything this small
formatter does not understand falls back to Excel's "General" look, which never prints float noise
(29.96, not 29.960000000000001). Pure functions, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

_DATE_TOKENS = re.compile(r"(?i)yyyy|yy|m{1,5}|d{1,4}|h{1,2}|s{1,2}|am/pm|a/p|e|b[12]|[^\w\s]|\w|\s")
_HAS_DATE_CODE = re.compile(r"(?i)[ymdhs]")
# English names, as Excel shows them for an en-US format (locale-specific formats are rare in data sheets).
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December")  # fmt: skip
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def general(value: float | int) -> str:
    """A number in Excel's General look: integers without ``.0``, at most 15 significant digits."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    text = f"{value:.15g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        return f"{mantissa}E{exponent[0]}{exponent[1:].lstrip('0').rjust(2, '0')}"
    return text


def format_cell(value: object, number_format: str = "General") -> str:
    """The text a spreadsheet displays for ``value`` under ``number_format`` ("" for an empty cell)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, str):
        return value
    if isinstance(value, datetime | date | time):
        return format_date(value, number_format)
    if isinstance(value, timedelta):
        return _duration(value)
    if isinstance(value, int | float):
        return format_number(value, number_format)
    return str(value)


def _split_sections(fmt: str) -> list[str]:
    sections: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(fmt):
        ch = fmt[i]
        if ch == '"':
            end = fmt.find('"', i + 1)
            end = len(fmt) - 1 if end < 0 else end
            current.append(fmt[i : end + 1])
            i = end + 1
            continue
        if ch in "\\_*" and i + 1 < len(fmt):
            current.append(fmt[i : i + 2])
            i += 2
            continue
        if ch == "[":
            end = fmt.find("]", i)
            end = len(fmt) - 1 if end < 0 else end
            current.append(fmt[i : end + 1])
            i = end + 1
            continue
        if ch == ";":
            sections.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    sections.append("".join(current))
    return sections


@dataclass(frozen=True, slots=True)
class _Pattern:
    prefix: str
    suffix: str
    int_zeros: int  # digits always shown before the point
    decimals: int  # digits shown after the point at most
    min_decimals: int  # digits shown after the point at least
    grouping: bool
    scale: int  # trailing commas: divide by 1000 per comma
    percent: int
    exponent: bool
    has_digits: bool


def _parse_section(section: str) -> _Pattern | None:
    """The number pattern of one format section, or ``None`` when it is beyond this formatter."""
    prefix: list[str] = []
    suffix: list[str] = []
    digits: list[str] = []
    percent = 0
    exponent = False
    i = 0
    while i < len(section):
        ch = section[i]
        literal: str | None = None
        if ch == '"':
            end = section.find('"', i + 1)
            end = len(section) if end < 0 else end
            literal, i = section[i + 1 : end], end + 1
        elif ch == "\\" and i + 1 < len(section):
            literal, i = section[i + 1], i + 2
        elif ch == "_" and i + 1 < len(section):
            literal, i = " ", i + 2
        elif ch == "*" and i + 1 < len(section):
            i += 2
            continue
        elif ch == "[":
            end = section.find("]", i)
            end = len(section) if end < 0 else end
            inner = section[i + 1 : end]
            i = end + 1
            if inner.startswith("$"):
                literal = inner[1:].split("-", 1)[0]
            elif inner[:1] in "<>=":
                return None  # conditional sections: leave to General
            else:
                continue  # a colour or a locale
        elif ch in "0#?.,":
            if suffix and ch != ",":
                return None  # literals between digit placeholders (phone numbers, ids)
            digits.append(ch)
            i += 1
            continue
        elif ch in "Ee" and section[i + 1 : i + 2] in ("+", "-") and digits:
            exponent = True
            i += 2
            while i < len(section) and section[i] in "0#":
                i += 1
            continue
        elif ch == "/" or (ch.isalpha() and ch not in "$"):
            if ch in "@":
                literal, i = "@", i + 1
            else:
                return None  # fractions, dates, unknown codes
        else:
            literal, i = ch, i + 1
        if ch == "%":
            percent += 1
        if literal is not None:
            (suffix if digits else prefix).append(literal)
    text = "".join(digits)
    scale = len(text) - len(text.rstrip(","))
    whole, _, frac = text.rstrip(",").partition(".")
    return _Pattern(
        prefix="".join(prefix),
        suffix="".join(suffix),
        int_zeros=whole.count("0"),
        decimals=sum(frac.count(c) for c in "0#?"),
        min_decimals=frac.count("0") + frac.count("?"),
        grouping="," in whole,
        scale=scale,
        percent=percent,
        exponent=exponent,
        has_digits=bool(digits),
    )


def format_number(value: float | int, number_format: str = "General") -> str:
    """A number as ``number_format`` shows it (falls back to General for what is not understood)."""
    fmt = (number_format or "General").strip()
    if fmt.lower() == "general" or value != value or value in (float("inf"), float("-inf")):
        return general(value)
    sections = _split_sections(fmt)
    if value < 0 and len(sections) >= 2 and sections[1].strip():
        section, sign = sections[1], ""
        value = -value
    elif value == 0 and len(sections) >= 3:
        section, sign = sections[2], ""
    else:
        section, sign = sections[0], "-" if value < 0 else ""
        value = abs(value)
    if section.strip().lower() == "general":
        return sign + general(value)
    pattern = _parse_section(section)
    if pattern is None:
        return general(-value if sign else value)
    if not pattern.has_digits:  # a text-only section: "@" stands for the value, anything else is literal
        return (sign + pattern.prefix + pattern.suffix).replace("@", general(value)).strip()
    body = _digits(value, pattern)
    if sign and set(body) <= set("0.,"):
        sign = ""  # Excel shows -0.001 with "0" as "0", not "-0"
    return (sign + pattern.prefix + body + pattern.suffix).strip()


def _digits(value: float | int, pattern: _Pattern) -> str:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return general(value)
    number = number * (Decimal(100) ** pattern.percent) / (Decimal(1000) ** pattern.scale)
    if pattern.exponent:
        return f"{float(number):.{pattern.decimals}E}"
    rounded = number.quantize(Decimal(1).scaleb(-pattern.decimals), rounding=ROUND_HALF_UP)
    whole_part, _, frac_part = f"{rounded:f}".partition(".")
    whole_part = whole_part.lstrip("0")
    if len(whole_part) < pattern.int_zeros:
        whole_part = whole_part.rjust(pattern.int_zeros, "0")
    if pattern.grouping and whole_part:
        whole_part = f"{int(whole_part):,}"
    frac_part = frac_part.rstrip("0")
    if len(frac_part) < pattern.min_decimals:
        frac_part = frac_part.ljust(pattern.min_decimals, "0")
    return f"{whole_part}.{frac_part}" if frac_part else whole_part


def format_date(value: datetime | date | time, number_format: str = "") -> str:
    """A date or time as ``number_format`` shows it, or in ISO form when the format is not a date's."""
    fmt = _split_sections(number_format or "")[0]
    fmt = re.sub(r"\[[^\]]*\]", "", fmt)
    if not _HAS_DATE_CODE.search(re.sub(r'"[^"]*"|\\.', "", fmt)):
        return _iso(value)
    tokens = _DATE_TOKENS.findall(re.sub(r'"([^"]*)"', lambda m: "\\" + "\\".join(m.group(1)), fmt))
    twelve = any(t.lower() in ("am/pm", "a/p") for t in tokens)
    day = value if isinstance(value, date) else None
    clock = value if isinstance(value, time) else (value.time() if isinstance(value, datetime) else None)
    out: list[str] = []
    escaped = False
    for index, token in enumerate(tokens):
        if escaped:
            out.append(token)
            escaped = False
            continue
        if token == "\\":
            escaped = True
            continue
        lower = token.lower()
        if lower.startswith("m") and len(lower) <= 2 and _is_minute(tokens, index):
            out.append(f"{clock.minute:0{len(lower)}d}" if clock else "")
        elif lower[0] in "ymd" and lower.isalpha() and day is None:
            return _iso(value)
        elif lower in ("yyyy", "yyy"):
            out.append(f"{day.year:04d}" if day else "")
        elif lower == "yy":
            out.append(f"{day.year % 100:02d}" if day else "")
        elif lower.startswith("m") and lower.isalpha() and set(lower) == {"m"} and day:
            name = _MONTHS[day.month - 1]
            out.append({1: str(day.month), 2: f"{day.month:02d}", 3: name[:3], 4: name}.get(len(lower), name[0]))
        elif set(lower) == {"d"} and day:
            weekday = _DAYS[day.weekday()]
            out.append({1: str(day.day), 2: f"{day.day:02d}", 3: weekday[:3]}.get(len(lower), weekday))
        elif set(lower) == {"h"}:
            hour = clock.hour if clock else 0
            hour = (hour % 12 or 12) if twelve else hour
            out.append(f"{hour:0{len(lower)}d}")
        elif set(lower) == {"s"}:
            out.append(f"{(clock.second if clock else 0):0{len(lower)}d}")
        elif lower in ("am/pm", "a/p"):
            pm = bool(clock and clock.hour >= 12)
            text = ("PM" if pm else "AM") if lower == "am/pm" else ("P" if pm else "A")
            out.append(text if token[0].isupper() else text.lower())
        elif lower in ("e", "b1", "b2") or (token.isalpha() and lower not in "ymdhs"):
            return _iso(value)
        else:
            out.append(token)
    return "".join(out).strip() or _iso(value)


def _is_minute(tokens: list[str], index: int) -> bool:
    """``m``/``mm`` means minutes right after an hour or right before a second code."""
    for j in range(index - 1, -1, -1):
        t = tokens[j].lower()
        if t.isalpha():
            return set(t) == {"h"}
    for j in range(index + 1, len(tokens)):
        t = tokens[j].lower()
        if t.isalpha():
            return set(t) == {"s"}
    return False


def _iso(value: datetime | date | time) -> str:
    if isinstance(value, datetime):
        if value.time() == time(0):
            return value.date().isoformat()
        return value.isoformat(sep=" ", timespec="seconds" if value.microsecond == 0 else "milliseconds")
    if isinstance(value, date):
        return value.isoformat()
    return value.isoformat(timespec="seconds" if value.microsecond == 0 else "milliseconds")


def _duration(value: timedelta) -> str:
    total = int(value.total_seconds())
    sign = "-" if total < 0 else ""
    hours, rest = divmod(abs(total), 3600)
    return f"{sign}{hours}:{rest // 60:02d}:{rest % 60:02d}"
