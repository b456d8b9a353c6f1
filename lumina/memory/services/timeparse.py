"""Periods a question is about: "last spring", "in 2023", "two weeks ago", "before the move".

Phrases are found with patterns, their dates computed by dateparser (relative to the
question's reference time), and each becomes a window with the granularity the phrase
has: a season, a year, a month, a week, a day. dateparser's own ``search_dates`` reads
every short word as a date ("we" is Wednesday) and knows no seasons, so it only ever
sees the phrase the patterns found. "before/after X", where X is not a date, is an
anchor: search resolves it to when X was said. What only looks like a period is left to
the words: a month's name with no date around it ("June's bike"), and "before/after X" in
a question about the time between two events ("how long after the move…").
"""

from __future__ import annotations

import calendar
import datetime as dt
import re

from dateutil.relativedelta import relativedelta

from lumina.memory.records_types import TimeWindow

_MONTHS = (
    "january|february|march|april|may|june|july|august|september|october|november|december|"
    "jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
)
_SEASONS = {"spring": (3, 3), "summer": (6, 3), "autumn": (9, 3), "fall": (9, 3), "winter": (12, 3)}
_NUMBERS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "a couple of": 2,
    "a few": 3, "several": 3,
}  # fmt: skip
_NUMBER = (
    r"(?P<n>\d{1,3}|a couple of|a few|several|an?|one|two|three|four|five|six|seven|eight|"
    r"nine|ten|eleven|twelve)"
)
_YEAR = r"(?P<year>(?:19|20)\d{2})"

_SEASON = re.compile(
    rf"\b(?:(?P<rel>last|this|next|past)\s+)?(?P<season>spring|summer|autumn|fall|winter)"
    rf"(?:\s+(?:of\s+)?{_YEAR})?\b",
    re.IGNORECASE,
)
_PART_YEAR = re.compile(rf"\b(?P<part>early|mid|late)(?:-|\s+)(?:in\s+)?{_YEAR}\b", re.I)
_MONTH = re.compile(
    rf"\b(?:(?P<rel>last|this|next|past)\s+)?(?P<month>{_MONTHS})\b(?:\s+(?:of\s+)?{_YEAR})?",
    re.IGNORECASE,
)
_DAY = re.compile(
    rf"\b(?:(?P<md>(?:{_MONTHS})\s+\d{{1,2}}(?:st|nd|rd|th)?)|(?P<dm>\d{{1,2}}(?:st|nd|rd|th)?"
    rf"\s+(?:of\s+)?(?:{_MONTHS})))(?:,?\s+{_YEAR})?\b|\b(?P<iso>\d{{4}}-\d{{2}}-\d{{2}})\b",
    re.IGNORECASE,
)
_YEAR_ONLY = re.compile(rf"\b(?:(?:in|during|of)\s+)?{_YEAR}\b", re.I)
_AGO = re.compile(rf"\b{_NUMBER}\s+(?P<unit>day|week|month|year)s?\s+ago\b", re.IGNORECASE)
_RELATIVE = re.compile(
    r"\b(?:(?P<rel>last|this|past|previous)\s+(?P<unit>week|month|year|weekend)|"
    r"(?P<day>yesterday|today|tonight))\b",
    re.IGNORECASE,
)
_RECENT = re.compile(r"\b(?:recently|lately|these days|nowadays)\b", re.IGNORECASE)
_ANCHOR_STOP = frozenset(
    ["did", "do", "does", "was", "were", "is", "are", "what", "when", "where", "who", "how",
     "which", "why", "has", "have", "had", "will", "would", "could", "should", "can", "and",
     "but", "or", "then"]
)  # fmt: skip
_ANCHOR_SKIP = frozenset(["the", "my", "our", "we", "i", "a", "an", "his", "her", "their"])
_BOUND = re.compile(
    r"\b(?P<dir>before|after|since|until|prior to)\s+(?P<what>[^,.;?!]{2,60})", re.IGNORECASE
)
# A month without a year, a day or "last/this/next" is a date only after one of these:
# "in June", "since June", "early June"; else it is a name ("June's bike") or "may".
_MONTH_CUE = re.compile(
    r"\b(?:in|during|since|until|till|before|after|by|from|to|through|throughout|around|"
    r"about|of|early|late|mid|every|each|that|end of|start of|beginning of)[\s-]*$",
    re.IGNORECASE,
)
# "How long after the move did…" asks for the time between two events: both are evidence,
# and neither bounds the period.
_DURATION = re.compile(
    r"\bhow\s+(?:long|soon|many\s+\w+|much\s+(?:time|later|earlier))\s*$", re.IGNORECASE
)


def _utc(year: int, month: int = 1, day: int = 1) -> dt.datetime:
    return dt.datetime(year, month, day, tzinfo=dt.UTC)


def _add_months(start: dt.datetime, months: int) -> dt.datetime:
    index = start.year * 12 + start.month - 1 + months
    return _utc(index // 12, index % 12 + 1)


def _month_number(name: str) -> int:
    name = name.lower()[:3]
    return [m.lower()[:3] for m in calendar.month_name[1:]].index(name) + 1


def _season(match: re.Match[str], now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    first, length = _SEASONS[match.group("season").lower()]
    if match.group("year"):
        start = _utc(int(match.group("year")), first)
        return start, _add_months(start, length)
    rel = (match.group("rel") or "").lower()
    start = _utc(now.year, first)
    if first == 12 and now.month < 3:
        start = _utc(now.year - 1, 12)  # this winter began last December
    end = _add_months(start, length)
    if rel in ("last", "past", ""):
        # The most recent such season that has ended (bare "spring": the latest begun).
        while end > now if rel else start > now:
            start = _utc(start.year - 1, first)
            end = _add_months(start, length)
    elif rel == "next":
        while start <= now:
            start = _utc(start.year + 1, first)
        end = _add_months(start, length)
    return start, end


def _dateparser(phrase: str, now: dt.datetime) -> dt.datetime | None:
    import dateparser

    parsed = dateparser.parse(
        phrase,
        languages=["en"],
        settings={
            "RELATIVE_BASE": now.replace(tzinfo=None),
            "PREFER_DATES_FROM": "past",
            "RETURN_AS_TIMEZONE_AWARE": False,
        },
    )
    return parsed.replace(tzinfo=dt.UTC) if parsed is not None else None


def _spans(query: str, now: dt.datetime) -> list[tuple[int, int, TimeWindow]]:
    found: list[tuple[int, int, TimeWindow]] = []

    def add(match: re.Match[str], start: dt.datetime, end: dt.datetime, kind="period") -> None:
        found.append(
            (match.start(), match.end(), TimeWindow(match.group(0).strip(), start, end, kind))
        )

    for match in _SEASON.finditer(query):
        add(match, *_season(match, now))
    for match in _PART_YEAR.finditer(query):
        year = int(match.group("year"))
        part = {"early": 1, "mid": 5, "late": 9}[match.group("part").lower()]
        add(match, _utc(year, part), _add_months(_utc(year, part), 4))
    for match in _DAY.finditer(query):
        day = _dateparser(match.group(0), now)
        if day is not None:
            start = day.replace(hour=0, minute=0, second=0, microsecond=0)
            add(match, start, start + dt.timedelta(days=1))
    for match in _MONTH.finditer(query):
        if not (
            match.group("year") or match.group("rel") or _MONTH_CUE.search(query, 0, match.start())
        ):
            continue
        month = _month_number(match.group("month"))
        if match.group("year"):
            start = _utc(int(match.group("year")), month)
        else:
            start = _utc(now.year, month)
            rel = (match.group("rel") or "").lower()
            if rel == "next":
                if start <= now:
                    start = _utc(now.year + 1, month)
            elif rel != "this" and _add_months(start, 1) > now:
                start = _utc(now.year - 1, month)
        add(match, start, _add_months(start, 1))
    for match in _YEAR_ONLY.finditer(query):
        year = int(match.group("year"))
        add(match, _utc(year), _utc(year + 1))
    for match in _AGO.finditer(query):
        count = match.group("n").lower()
        amount = int(count) if count.isdigit() else _NUMBERS.get(count, 1)
        unit = match.group("unit").lower()
        point = now - relativedelta(**{f"{unit}s": amount})
        half = {"day": 1, "week": 4, "month": 15, "year": 183}[unit]
        add(match, point - dt.timedelta(days=half), point + dt.timedelta(days=half))
    for match in _RELATIVE.finditer(query):
        day = (match.group("day") or "").lower()
        today = now.replace(hour=0, minute=0, second=0, microsecond=0)
        if day == "yesterday":
            add(match, today - dt.timedelta(days=1), today)
        elif day in ("today", "tonight"):
            add(match, today, today + dt.timedelta(days=1))
        else:
            rel, unit = match.group("rel").lower(), match.group("unit").lower()
            if unit in ("week", "weekend"):
                monday = today - dt.timedelta(days=today.weekday())
                start = monday if rel == "this" else monday - dt.timedelta(days=7)
                add(match, start, start + dt.timedelta(days=7))
            elif unit == "month":
                this = _utc(now.year, now.month)
                start = this if rel == "this" else _add_months(this, -1)
                add(match, start, _add_months(start, 1))
            else:
                start = _utc(now.year if rel == "this" else now.year - 1)
                add(match, start, _utc(start.year + 1))
    for match in _RECENT.finditer(query):
        add(match, now - dt.timedelta(days=30), now)
    return found


def time_windows(query: str, *, now: dt.datetime) -> tuple[list[TimeWindow], str]:
    """The periods ``query`` names, and the query with their phrases removed."""
    spans = _spans(query, now)
    # Longest phrase first; drop phrases inside a longer one ("2023" in "spring 2023").
    spans.sort(key=lambda span: (-(span[1] - span[0]), span[0]))
    kept: list[tuple[int, int, TimeWindow]] = []
    for span in spans:
        if all(span[1] <= other[0] or span[0] >= other[1] for other in kept):
            kept.append(span)
    kept.sort()
    windows: list[TimeWindow] = []
    for bound in _BOUND.finditer(query):
        direction = bound.group("dir").lower()
        inside = [span for span in kept if bound.start("what") <= span[0] < bound.end("what")]
        if _DURATION.search(query, 0, bound.start()):
            kept = [span for span in kept if span not in inside]
            continue
        if inside:
            window = inside[0][2]
            start, end = (
                (None, window.start)
                if direction in ("before", "until", "prior to")
                else (window.end if direction == "after" else window.start, None)
            )
            kept = [span for span in kept if span is not inside[0]]
            windows.append(
                TimeWindow(
                    bound.group(0).strip(),
                    start,
                    end,
                    direction.replace("prior to", "before")
                    .replace("until", "before")
                    .replace("since", "after"),
                )
            )
        else:
            words = bound.group("what").split()
            cut = next((i for i, w in enumerate(words) if w.lower() in _ANCHOR_STOP), len(words))
            anchor = " ".join(w for w in words[:cut][:4] if w.lower() not in _ANCHOR_SKIP)
            if not anchor:
                continue
            windows.append(
                TimeWindow(
                    bound.group(0).strip(),
                    None,
                    None,
                    "before" if direction in ("before", "until", "prior to") else "after",
                    anchor=anchor,
                )
            )
    windows = [span[2] for span in kept] + windows
    remaining = query
    for start, end, _window in sorted(kept, reverse=True):
        remaining = remaining[:start] + " " + remaining[end:]
    remaining = re.sub(r"\b(?:in|during|on|from|of)\s*(?=[?.!,]|$)", " ", remaining)
    return windows, re.sub(r"\s+", " ", remaining).strip()
