"""System entities: dates, times, ranges, durations, numbers and money in Chinese and English,
found without training.

:func:`find_system_entities` returns :class:`~dingskill.nlu.entity.Entity` objects
(``source=EntitySource.SYSTEM``) whose types and values are those of the table in
:mod:`dingskill.nlu.entity`. The rules:

* **Spans point into the text as passed.** Full-width forms are folded internally by a
  one-to-one character map, so offsets never move; nothing of the text is rewritten.
* **One piece of text is one entity.** Candidates are found, then combined, then the longest
  wins (``datetime``/``date_range`` > ``date`` > ``time`` > ``amount`` > ``duration`` >
  ``part_of_day`` > ``number`` among equals): "12月21日开始请5天年假" is the date 12-21 and the
  duration 5 days, and no number 21 or 5 besides.
* **A date directly followed by a time makes one ``datetime`` entity covering both**
  (周五下午三点, "tomorrow at 3pm", "3pm on Friday"). A date followed by a part of day without a
  clock time stays two entities: 明天下午 is the date 明天 and the part of day 下午
  ("tomorrow afternoon" likewise); 今晚 is the date 今 and the part of day 晚; "tonight" is a
  part of day that names its date ("tonight at 8" is a ``datetime``). A date that ends a
  range does not start a date-time (周一至周五早上八点半: the range, then the time).
* **Ranges**: two dates joined by 到/至/-/~/"to"/"until"/"through" ("between ... and ...")
  make one ``date_range`` (下周一到周三, 12月21日至25日, "Monday to Wednesday", "Dec 21 to 23");
  the end is read relative to the start (周三 after 下周一 is the Wednesday of that week). A
  leading 从/"from" is not part of the span. 这周/下周/本月/下个月/周末/"next week", a named month
  (3月份, "in March") and two periods joined (1月到3月) are ranges too; 月底 / "end of the
  month" is a date. The second time of 下午三点到五点 inherits the afternoon (and the date, as a
  ``datetime``); there is no time-range type: a time range is two entities.
* **From now**: 3天后 / "in 3 days" is a date; 两小时后 / "in 2 hours" a ``datetime`` from
  ``now``.
* **Resolution** against ``today`` (default: ``now``'s date, else the system date): a weekday
  alone (周五, "Friday") is this week's when still ahead or today, else next week's; 这周五 /
  "this Friday" is this week's, 下周五 / "next Friday" next (Monday-based) week's; a month
  and day without a year is this year's unless that is over 180 days ago (then next year's);
  holidays on fixed dates (元旦, 国庆, 圣诞, "Christmas") are their next occurrence (lunar
  ones such as 春节 are not covered).
* **Clock times**: 下午三点 is 15:00 (a part of day moves the hour); a spoken hour of 1-6
  without one (三点半, 两点一刻, "half past four") is read in the afternoon (15:30), other
  spoken hours as said (八点 is 08:00); 15:30 / 3:30 written with a colon are as written;
  晚上十二点 is 00:00.
* **Numbers**: digits (1,200.5, 1.5万), Chinese numerals (十五, 两百零五, 两千五 = 2500) and
  English words (twenty-one); a lone Chinese numeral counts only before a measure word or
  standing alone (一个人, 五), not inside words (统一, 一起, 快一点).
* Speed: precompiled patterns with bounded repetition only (no nested unbounded
  quantifiers, so no catastrophic backtracking), each scanned at most once and only when the
  text holds a word it needs, and composition by position lookup: linear in the text
  (``bench/system_entities.py --speed``).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from .entity import Entity, EntitySource

__all__ = ["find_system_entities", "parse_number", "reads_clock"]

# ---------------------------------------------------------------- folding (offsets unchanged)

_FOLD = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)}  # full-width ASCII -> ASCII
_FOLD.update({c: c + 32 for c in range(0x41, 0x5B)})  # A-Z -> a-z
_FOLD.update({c: c - 0xFEE0 + 32 for c in range(0xFF21, 0xFF3B)})  # Ａ-Ｚ -> a-z
_FOLD.update({0x3000: 0x20, 0xFFE5: 0xA5, 0xFFE0: 0xA2, 0xFFE1: 0xA3, 0x2236: 0x3A})


def _fold(text: str) -> str:
    """Full-width forms half-width, ASCII letters lower case: one character for one."""
    folded = text.translate(_FOLD)
    assert len(folded) == len(text)  # one character for one character, by construction
    return folded


# ---------------------------------------------------------------- numerals

_CN_DIGIT = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "俩": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_CN_UNIT = {"十": 10, "百": 100, "千": 1000}
_CN_BIG = {"万": 10_000, "亿": 100_000_000}
_CN_CHARS = "零〇一二两俩三四五六七八九十百千万亿"
_CN_NUM = f"(?<![{_CN_CHARS}])[{_CN_CHARS}]{{1,12}}"
# 1,234.5 | 1234.5 | 1.5万 (no digit, dot or comma around it)
# (the first digit comes first, then the look-behind: the engine can skip to digits fast)
_AR_NUM = (
    r"\d(?<!\d\d)(?<!\d[.,]\d)(?:\d{0,2}(?:,\d{3}){1,4}|\d{0,11})(?:\.\d{1,6})?(?![\d])"
    r"(?:\s?[万千亿](?![元块]?[万千亿]))?"
)
_EN_SMALL = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_EN_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_EN_VALUE = {w: i for i, w in enumerate(_EN_SMALL)}
_EN_VALUE.update({w: 20 + 10 * i for i, w in enumerate(_EN_TENS)})
_EN_SCALE = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
_EN_WORD = "(?:" + "|".join(sorted([*_EN_VALUE, *_EN_SCALE], key=len, reverse=True)) + r")\b"
_EN_NUM = rf"\b{_EN_WORD}(?:(?:[ -]|\sand\s){_EN_WORD}){{0,6}}"
_EN_HOUR = r"(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)\b"  # clock hours


def _cn_value(s: str) -> float | None:
    """Chinese numerals: 五 -> 5, 十五 -> 15, 两百零三 -> 203, 一万二千 -> 12000, 二〇二六 -> 2026."""
    if not s:
        return None
    if all(ch in _CN_DIGIT for ch in s):  # digit by digit (二〇二六)
        if len(s) == 1:
            return float(_CN_DIGIT[s])
        return float("".join(str(_CN_DIGIT[ch]) for ch in s))
    total, section, digit = 0, 0, None
    prev_unit = 0  # the unit just before the current digit (两千五: 千), 0 after a 零 or a digit
    for ch in s:
        if ch in _CN_DIGIT:
            if digit is not None and _CN_DIGIT[ch] != 0 and digit != 0:
                return None  # two digits in a row without a unit (五六十)
            digit = _CN_DIGIT[ch]
            prev_unit = prev_unit if digit else 0
        elif ch in _CN_UNIT:
            section += (1 if digit is None else digit) * _CN_UNIT[ch]
            digit, prev_unit = None, _CN_UNIT[ch]
        elif ch in _CN_BIG:
            total = (total + section + (digit or 0)) * _CN_BIG[ch]
            section, digit, prev_unit = 0, None, _CN_BIG[ch]
        else:
            return None
    if digit and prev_unit >= 100 and s[-2] in "百千万亿":
        # 两千五 is 2500, 三百五 350, 一万二 12000: a last digit right after a unit counts
        # in the next lower unit
        return float(total + section + digit * prev_unit // 10)
    return float(total + section + (digit or 0))


def _en_value(s: str) -> float | None:
    """English number words: "three" -> 3, "twenty-one" -> 21, "two hundred and five" -> 205."""
    total, current, last = 0, 0, ""
    for w in re.split(r"[\s-]+", s.lower()):
        if w == "and":
            if last != "scale":
                return None
            continue
        if w in _EN_SCALE:
            if last == "" and current == 0:
                return None
            scale = _EN_SCALE[w]
            if scale == 100:
                current = (current or 1) * 100
            else:
                total += (current or 1) * scale
                current = 0
            last = "scale"
        elif w in _EN_VALUE:
            v = _EN_VALUE[w]
            if last == "small" or (last == "tens" and v >= 10):
                return None
            current += v
            last = "tens" if v >= 20 else "small"
        else:
            return None
    return float(total + current)


def parse_number(text: str) -> float | None:
    """A number written in digits, Chinese numerals or English words, or None:
    "1,200.5", "1.5万", "十五", "两百", "twenty-one"."""
    s = _fold(text).strip().replace(",", "")
    if not s:
        return None
    try:
        return float(s)
    except ValueError:
        pass
    if s[-1] in _CN_BIG or s[-1] == "千":  # digits times a unit: 1.5万, 3千 (not 三万二千)
        try:
            return float(s[:-1].strip()) * _CN_BIG.get(s[-1], 1000)
        except ValueError:
            pass
    value = _cn_value(s)
    return _en_value(s) if value is None else value


def _intish(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x


# ---------------------------------------------------------------- candidates

_PRIORITY = {
    "datetime": 0,
    "date_range": 0,
    "date": 1,
    "time": 2,
    "amount": 3,
    "duration": 4,
    "part_of_day": 5,
    "number": 6,
}


@dataclass(slots=True)
class _Cand:
    start: int
    end: int
    entity: str
    value: object
    confidence: float = 1.0
    # what composition needs to know: the date, the clock time, how a date was said
    info: dict = field(default_factory=dict)


# ---------------------------------------------------------------- dates

_WEEKDAY_ZH = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6}
_WEEKDAY_ZH.update({str(i + 1): i for i in range(7)})
_WEEKDAY_EN = {
    "mon": 0,
    "tue": 1,
    "wed": 2,
    "thu": 3,
    "fri": 4,
    "sat": 5,
    "sun": 6,
}
_MONTHS = {
    "jan": 1,
    "feb": 2,
    "mar": 3,
    "apr": 4,
    "may": 5,
    "jun": 6,
    "jul": 7,
    "aug": 8,
    "sep": 9,
    "oct": 10,
    "nov": 11,
    "dec": 12,
}
_MONTH_RE = (
    r"(?:january|february|march|april|may|june|july|august|september|october|november|"
    r"december|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec)"
)
_CN_MONTH = "(?:十[一二]?|[一二三四五六七八九])"
_CN_DAY = "(?:[二三]?十[一二三四五六七八九]?|三十一?|[一二三四五六七八九])"
_ZH_REL_DAY = {
    "大前天": -3,
    "前天": -2,
    "昨天": -1,
    "昨日": -1,
    "今天": 0,
    "今日": 0,
    "明天": 1,
    "明日": 1,
    "后天": 2,
    "大后天": 3,
}
_WEEK_PREFIX = {
    "下下个": 2,
    "下下": 2,
    "下个": 1,
    "下": 1,
    "上上个": -2,
    "上上": -2,
    "上个": -1,
    "上": -1,
    "这个": 0,
    "这": 0,
    "本": 0,
    "next": 1,
    "this": 0,
    "last": -1,
}
_ZH_WEEK_P = "下下个|下下|下个|下|上上个|上上|上个|上|这个|这|本"
# words after which a bare 号 or 日 is not a day of the month (3号楼, 5号会议室, 3日游)
_NOT_DAY_AFTER = "楼会房室厅线门口床位机车店馆桥码窗台柜箱游院馆站"

_RE_ZH_MD = re.compile(
    rf"(?:(?P<y>(?<!\d)\d{{4}}|[〇零一二三四五六七八九]{{4}}|[今明去])\s?年\s?)?"
    rf"(?<![\d.])(?P<m>1[0-2]|0?[1-9]|{_CN_MONTH})\s?月\s?(?P<d>[0-3]?\d|{_CN_DAY})"
    r"(?![\d])\s?(?P<suf>[日号])?"
)
_RE_ZH_REL_MONTH_DAY = re.compile(
    rf"(?P<p>下个?|这个?|本|上个?)月\s?(?P<d>[0-3]?\d|{_CN_DAY})(?![\d])\s?[日号]"
)
_RE_BARE_DAY = re.compile(rf"(?<![\d.月/{_CN_CHARS}])(?P<d>[0-3]?\d|{_CN_DAY})\s?(?P<suf>[日号])")
_RE_ZH_REL = re.compile("大前天|前天|昨天|昨日|今天|今日|明天|明日|大后天|后天")
_RE_ZH_SHORT_DAY = re.compile("(?P<d>[今明昨])(?=[晚早])")
_RE_ZH_WEEKDAY = re.compile(
    rf"(?P<p>{_ZH_WEEK_P})?(?:周|星期|礼拜)(?P<w>[一二三四五六日天1-7])(?![一二三四五六七八九十\d])"
)
_RE_ZH_WEEK = re.compile(
    rf"(?P<p>{_ZH_WEEK_P})(?P<u>周|星期|礼拜)(?P<end>末)?(?![一二三四五六日天1-7])"
    r"|(?<![\d一二三四五六七八九十两个])(?P<we>周末)"
)
_RE_ZH_MONTH = re.compile(r"(?P<p>下个|上个|这个|本)月(?![\d一二三四五六七八九十份])")
# a named month alone: 3月, 12月份, 2027年1月; "in March", "December 2026"
_RE_ZH_MONTH_NAMED = re.compile(
    rf"(?:(?P<y>(?<!\d)\d{{4}}|[今明去])\s?年\s?)?(?<![\d.个])(?P<m>1[0-2]|0?[1-9]|{_CN_MONTH})"
    rf"\s?月(?:份)?(?![\d{_CN_CHARS}号日底初中])"
)
# the last day of a month or year: 月底, 下个月底, 12月底, 年底; "end of the month"
_RE_ZH_END = re.compile(
    rf"(?:(?P<p>下个|上个|这个|本)|(?P<m>1[0-2]|0?[1-9]|{_CN_MONTH})\s?)?月(?:底|末)"
    r"|(?:(?P<y>[今明去])年)?年(?:底|末)|(?P<y2>[今明去])年(?:底|末)"
)
_RE_EN_END = re.compile(
    r"\bend\s{1,2}of\s{1,2}(?:the\s{1,2})?(?:(?P<p>this|next)\s{1,2})?(?P<u>month|year)\b", re.I
)
_RE_EN_MONTH_NAMED = re.compile(
    rf"\b(?:(?P<in>in|during|for|of|next|this)\s{{1,2}})?(?P<mon>{_MONTH_RE})\b"
    r"(?:,?\s{1,2}(?P<y>\d{4})\b)?(?!\s{0,2}\d)",
    re.I,
)
_RE_ISO = re.compile(
    r"(?<![\d.])(?P<y>\d{4})(?P<s>[-/.])(?P<m>\d{1,2})(?P=s)(?P<d>\d{1,2})(?![\d])(?!\.\d)"
)
_RE_SLASH = re.compile(
    r"(?<![\d/.])(?P<m>\d{1,2})/(?P<d>\d{1,2})(?:/(?P<y>\d{4}))?(?![\d/])(?!\.\d)"
)
_RE_EN_MD = re.compile(
    rf"\b(?P<mon>{_MONTH_RE})\.?\s{{1,2}}(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\b"
    r"(?:,?\s{1,2}(?P<y>\d{4})\b)?",
    re.I,
)
_RE_EN_DM = re.compile(
    rf"\b(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\s{{1,2}}(?:of\s{{1,2}})?(?P<mon>{_MONTH_RE})\b\.?"
    r"(?:,?\s{1,2}(?P<y>\d{4})\b)?",
    re.I,
)
_RE_EN_REL = re.compile(
    r"\b(?:(?:the\s)?day\safter\stomorrow|(?:the\s)?day\sbefore\syesterday|tomorrow|today|"
    r"yesterday|tmrw|tmr)\b",
    re.I,
)
_RE_EN_WEEKDAY = re.compile(
    r"\b(?:(?P<p>next|this|coming|last)\s{1,2})?"
    r"(?P<w>monday|tuesday|wednesday|thursday|friday|saturday|sunday|mon|tues|tue|wed|"
    r"thurs|thur|thu|fri|sat|sun)\b\.?(?P<nw>\s{1,2}(?:of\s)?next\sweek\b)?",
    re.I,
)
_RE_EN_WEEK = re.compile(
    r"\b(?P<p>next|this|last)\s{1,2}(?P<u>week|weekend|month)\b|\b(?:the\s)?weekend\b", re.I
)


# holidays on fixed Gregorian dates (the lunar ones, 春节 / 中秋, need a lunar calendar: not here)
_HOLIDAYS = {
    "元旦": (1, 1),
    "情人节": (2, 14),
    "妇女节": (3, 8),
    "劳动节": (5, 1),
    "儿童节": (6, 1),
    "教师节": (9, 10),
    "国庆节": (10, 1),
    "国庆": (10, 1),
    "万圣节": (10, 31),
    "平安夜": (12, 24),
    "圣诞节": (12, 25),
    "圣诞": (12, 25),
    "new year's day": (1, 1),
    "valentine's day": (2, 14),
    "halloween": (10, 31),
    "christmas eve": (12, 24),
    "christmas day": (12, 25),
    "christmas": (12, 25),
}
_RE_HOLIDAY = re.compile(
    "|".join(re.escape(k).replace("'", "['’]") for k in sorted(_HOLIDAYS, key=len, reverse=True)),
    re.I,
)


def _date_or_none(y: int, m: int, d: int) -> dt.date | None:
    try:
        return dt.date(y, m, d)
    except ValueError:
        return None


def _small(s: str) -> int | None:
    if s.isdecimal():
        return int(s)
    v = parse_number(s)
    return int(v) if v is not None and float(v).is_integer() else None


def _month_day(today: dt.date, m: int, d: int, year: int | None) -> dt.date | None:
    if year is not None:
        return _date_or_none(year, m, d)
    cand = _date_or_none(today.year, m, d)
    if cand is None:  # 2月29日 in a common year: the next leap year's
        return next((c for y in range(1, 5) if (c := _date_or_none(today.year + y, m, d))), None)
    if cand < today - dt.timedelta(days=180):
        cand = _date_or_none(today.year + 1, m, d)
    return cand


def _week_start(today: dt.date, weeks: int) -> dt.date:
    return today - dt.timedelta(days=today.weekday()) + dt.timedelta(weeks=weeks)


def _weekday(today: dt.date, wd: int, weeks: int | None) -> dt.date:
    if weeks is None:  # bare weekday: still ahead this week (or today), else next week's
        cand = _week_start(today, 0) + dt.timedelta(days=wd)
        return cand if cand >= today else cand + dt.timedelta(weeks=1)
    return _week_start(today, weeks) + dt.timedelta(days=wd)


def _dates(t: str, today: dt.date, out: list[_Cand]) -> None:
    def add(m: re.Match, d: dt.date | None, conf: float = 1.0, **info) -> None:
        if d is not None:
            out.append(_Cand(m.start(), m.end(), "date", d.isoformat(), conf, {"date": d, **info}))

    for m in _find(_RE_ZH_MD, t):
        y = m["y"]
        year = None
        if y:
            year = {"今": today.year, "明": today.year + 1, "去": today.year - 1}.get(y) or _small(
                y
            )
        mo, d = _small(m["m"]), _small(m["d"])
        if mo is None or d is None:
            continue
        if not m["suf"] and m.end() < len(t) and t[m.end()] in _CN_CHARS:
            continue  # 3月2十 ... not a day
        add(m, _month_day(today, mo, d, year), kind="md", year=year is not None)
    for m in _find(_RE_ZH_REL_MONTH_DAY, t):
        d = _small(m["d"])
        shift = _WEEK_PREFIX[m["p"]]  # 下个月 +1, 这个月 0, 上个月 -1
        first = today.replace(day=1)
        if shift > 0:
            first = (first + dt.timedelta(days=32)).replace(day=1)
        elif shift < 0:
            first = (first - dt.timedelta(days=1)).replace(day=1)
        if d is not None:
            add(m, _date_or_none(first.year, first.month, d), kind="md", year=True)
    for m in _find(_RE_BARE_DAY, t):
        nxt = t[m.end() : m.end() + 1]
        if nxt and nxt in _NOT_DAY_AFTER:
            continue
        d = _small(m["d"])
        if d is None or not 1 <= d <= 31:
            continue
        cand = _date_or_none(today.year, today.month, d)
        if cand is None or cand < today:
            nm = (today.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
            cand = _date_or_none(nm.year, nm.month, d)
        add(m, cand, 0.8, kind="bare_day", day=d)
    for m in _find(_RE_ZH_REL, t):
        add(m, today + dt.timedelta(days=_ZH_REL_DAY[m[0]]), kind="rel")
    for m in _find(_RE_ZH_SHORT_DAY, t):
        add(m, today + dt.timedelta(days={"今": 0, "明": 1, "昨": -1}[m["d"]]), kind="rel")
    for m in _find(_RE_ZH_WEEKDAY, t):
        wd = _WEEKDAY_ZH[m["w"]]
        weeks = _WEEK_PREFIX[m["p"]] if m["p"] else None
        add(m, _weekday(today, wd, weeks), kind="weekday", bare=weeks is None, wd=wd)
    for m in _find(_RE_ISO, t):
        add(m, _date_or_none(int(m["y"]), int(m["m"]), int(m["d"])), kind="md", year=True)
    for m in _find(_RE_SLASH, t):
        mo, d = int(m["m"]), int(m["d"])
        if mo > 12 and d <= 12:  # 21/12: day first
            mo, d = d, mo
        year = int(m["y"]) if m["y"] else None
        add(
            m,
            _month_day(today, mo, d, year),
            0.8 if year is None else 1.0,
            kind="md",
            year=year is not None,
        )
    for rx in (_RE_EN_MD, _RE_EN_DM):
        for m in _find(rx, t):
            mo = _MONTHS[m["mon"][:3].lower()]
            if m["mon"].lower() == "may" and rx is _RE_EN_MD and not m["y"]:
                # "may 5" is a date; "you may 5 ..." hardly; keep but with less confidence
                conf = 0.8
            else:
                conf = 1.0
            year = int(m["y"]) if m["y"] else None
            add(m, _month_day(today, mo, int(m["d"]), year), conf, kind="md", year=year is not None)
    for m in _find(_RE_HOLIDAY, t):
        if m[0].isascii() and (
            (m.start() and t[m.start() - 1].isalnum())
            or (m.end() < len(t) and t[m.end()].isalnum())
        ):
            continue  # inside a longer English word
        mo, d = _HOLIDAYS[m[0].lower().replace("’", "'")]
        day = _date_or_none(today.year, mo, d)
        if day is not None and day < today:
            day = _date_or_none(today.year + 1, mo, d)
        add(m, day, kind="holiday")
    for m in _find(_RE_EN_REL, t):
        w = m[0].lower()
        days = (
            2
            if "after" in w
            else -2
            if "before" in w
            else {"tomorrow": 1, "today": 0, "yesterday": -1, "tmr": 1, "tmrw": 1}[w]
        )
        add(m, today + dt.timedelta(days=days), kind="rel")
    for m in _find(_RE_EN_WEEKDAY, t):
        w = m["w"].lower()
        p = (m["p"] or "").lower()
        if w in ("sat", "sun") and not p:
            continue  # "I sat", "the sun"
        wd = _WEEKDAY_EN[w[:3]]
        if m["nw"]:
            weeks = 1
        elif p in ("next", "this", "last"):
            weeks = _WEEK_PREFIX[p]
        else:
            weeks = None
        add(m, _weekday(today, wd, weeks), kind="weekday", bare=weeks is None, wd=wd)


def _ranges_of_periods(t: str, today: dt.date, out: list[_Cand]) -> None:
    """这周 / 下周 / 周末 / 本月 / 下个月 / "next week" / "this month" / "the weekend"."""

    def add(m: re.Match, a: dt.date, b: dt.date) -> None:
        out.append(
            _Cand(
                m.start(),
                m.end(),
                "date_range",
                {"start": a.isoformat(), "end": b.isoformat()},
                1.0,
                {"date": a, "end": b},
            )
        )

    def month(shift: int) -> tuple[dt.date, dt.date]:
        first = today.replace(day=1)
        for _ in range(abs(shift)):
            first = (
                (first + dt.timedelta(days=32)).replace(day=1)
                if shift > 0
                else (first - dt.timedelta(days=1)).replace(day=1)
            )
        last = (first + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
        return first, last

    for m in _find(_RE_ZH_WEEK, t):
        weeks = _WEEK_PREFIX[m["p"]] if m["p"] else 0
        mon = _week_start(today, weeks)
        if m["end"] or m["we"]:
            add(m, mon + dt.timedelta(days=5), mon + dt.timedelta(days=6))
        else:
            add(m, mon, mon + dt.timedelta(days=6))
    for m in _find(_RE_ZH_MONTH, t):
        add(m, *month(_WEEK_PREFIX[m["p"]]))

    def named_month(mo: int, year: int | None) -> tuple[dt.date, dt.date]:
        if year is None:  # this year's, unless it ended over 180 days ago
            year = today.year
            end = (dt.date(year, mo, 1) + dt.timedelta(days=32)).replace(day=1)
            if end - dt.timedelta(days=1) < today - dt.timedelta(days=180):
                year += 1
        first = dt.date(year, mo, 1)
        return first, (first + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)

    for m in _find(_RE_ZH_MONTH_NAMED, t):
        y = m["y"]
        year = None
        if y:
            year = {"今": today.year, "明": today.year + 1, "去": today.year - 1}.get(y) or _small(
                y
            )
        mo = _small(m["m"])
        if mo is not None and 1 <= mo <= 12 and (year is None or 1 <= year <= 9999):
            add(m, *named_month(mo, year))
    for m in _find(_RE_EN_MONTH_NAMED, t):
        name = m["mon"].lower()
        if not m["in"] and not m["y"] and (name in ("may", "march") or len(name) <= 4):
            continue  # "you may", "march on", "mar": a bare month word needs "in" or a year
        start = (
            m.start("mon")
            if (m["in"] or "").lower() in ("in", "during", "for", "of")
            else m.start()
        )
        mo = _MONTHS[name[:3]]
        year = int(m["y"]) if m["y"] else None
        if (m["in"] or "").lower() == "next" and year is None:
            year = today.year + (1 if mo <= today.month else 0)
        a, b = named_month(mo, year)
        out.append(
            _Cand(
                start,
                m.end(),
                "date_range",
                {"start": a.isoformat(), "end": b.isoformat()},
                1.0,
                {"date": a, "end": b},
            )
        )
    for m in _find(_RE_ZH_END, t):
        if m[0].endswith(("年底", "年末")):
            year = today.year + {"明": 1, "去": -1}.get(m["y"] or m["y2"] or "", 0)
            day = dt.date(year, 12, 31)
        elif m["m"]:
            mo = _small(m["m"])
            if mo is None or not 1 <= mo <= 12:
                continue
            day = named_month(mo, None)[1]
        else:
            day = month(_WEEK_PREFIX[m["p"]] if m["p"] else 0)[1]
        out.append(
            _Cand(m.start(), m.end(), "date", day.isoformat(), 1.0, {"date": day, "kind": "rel"})
        )
    for m in _find(_RE_EN_END, t):
        shift = 1 if (m["p"] or "").lower() == "next" else 0
        if m["u"].lower() == "year":
            day = dt.date(today.year + shift, 12, 31)
        else:
            day = month(shift)[1]
        out.append(
            _Cand(m.start(), m.end(), "date", day.isoformat(), 1.0, {"date": day, "kind": "rel"})
        )
    for m in _find(_RE_EN_WEEK, t):
        p = (m["p"] or "this").lower()
        u = (m["u"] or "weekend").lower()
        if u == "month":
            add(m, *month(_WEEK_PREFIX[p]))
            continue
        mon = _week_start(today, _WEEK_PREFIX[p])
        if u == "weekend":
            add(m, mon + dt.timedelta(days=5), mon + dt.timedelta(days=6))
        else:
            add(m, mon, mon + dt.timedelta(days=6))


# ---------------------------------------------------------------- times of day

_POD_ZH = {
    "凌晨": "night",
    "早上": "morning",
    "早晨": "morning",
    "清晨": "morning",
    "上午": "morning",
    "中午": "noon",
    "正午": "noon",
    "午后": "afternoon",
    "下午": "afternoon",
    "傍晚": "evening",
    "黄昏": "evening",
    "晚上": "evening",
    "晚间": "evening",
    "夜里": "night",
    "夜间": "night",
    "深夜": "night",
    "半夜": "night",
    "早": "morning",
    "晚": "evening",
}
_POD_ZH_RE = "|".join(sorted(_POD_ZH, key=len, reverse=True))
_RE_POD_ZH = re.compile("|".join(k for k in sorted(_POD_ZH, key=len, reverse=True) if len(k) > 1))
_RE_POD_ZH_SHORT = re.compile("(?<=[今明昨])[晚早]")
_RE_POD_EN = re.compile(r"\b(?:morning|afternoon|evening|night|tonight)\b", re.I)
_CN_HOUR = "(?:二十[一二三四]?|十[一二]?|[零一二两三四五六七八九])"
_CN_MIN = "(?:[二三四五]?十[一二三四五六七八九]?|零[一二三四五六七八九])"
_RE_ZH_TIME = re.compile(
    rf"(?:(?P<pod>{_POD_ZH_RE})\s?)?(?<![\d{_CN_CHARS}小])(?P<h>[0-2]?\d|{_CN_HOUR})\s?"
    rf"(?P<mk>点钟|点|时)(?:\s?(?P<half>半)|(?P<q>一刻|三刻)|(?P<zheng>整)|"
    rf"\s?(?P<mi>[0-5]\d|{_CN_MIN}|[1-9](?=\s?分))(?P<fen>\s?分(?!钟))?)?"
)
_RE_COLON = re.compile(
    rf"(?:(?P<pod>{_POD_ZH_RE})\s?)?(?<![\d:.])(?P<h>[0-2]?\d):(?P<mi>[0-5]\d)(?::[0-5]\d)?"
    r"(?![\d:])(?:\s{0,2}(?P<ap>[ap])\.?m\b\.?)?",
    re.I,
)
_RE_AMPM = re.compile(
    rf"\b(?P<h>1[0-2]|0?[1-9]|{_EN_HOUR})(?:[:.](?P<mi>[0-5]\d))?\s{{0,2}}(?P<ap>[ap])\.?m\b\.?",
    re.I,
)
_RE_OCLOCK = re.compile(rf"\b(?P<h>1[0-2]|0?[1-9]|{_EN_HOUR})\s{{0,2}}o'?clock\b", re.I)
_RE_PAST = re.compile(
    rf"\b(?P<q>half|(?:a\s)?quarter)\s(?P<rel>past|to)\s(?P<h>1[0-2]|0?[1-9]|{_EN_HOUR})",
    re.I,
)
_RE_NOON = re.compile(r"\b(?:noon|midday|midnight)\b", re.I)


def _shift_hour(h: int, pod: str | None, explicit_pm: bool | None = None) -> int | None:
    """The 24-hour clock hour of ``h`` said with a part of day (or am/pm); None if invalid."""
    if explicit_pm is not None:
        if not 1 <= h <= 12:
            return None
        return (h % 12) + (12 if explicit_pm else 0)
    if h == 24:
        return 0
    if not 0 <= h <= 23:
        return None
    if pod in ("afternoon", "evening") and h < 12:
        return h + 12
    if pod == "evening" and h == 12:
        return 0  # 晚上十二点: midnight
    if pod == "night":
        return 0 if h == 12 else (h + 12 if 6 <= h < 12 else h)
    if pod == "noon" and 1 <= h <= 5:
        return h + 12
    return h


def _hm(h: int, mi: int) -> str:
    return f"{h:02d}:{mi:02d}"


def _times(t: str, out: list[_Cand]) -> None:
    def add(
        m: re.Match, end: int, h: int | None, mi: int, pod: str | None, ampm: bool, spoken=False
    ) -> None:
        if h is None or not 0 <= mi <= 59:
            return
        raw = h
        if spoken and not pod and 1 <= h <= 6:
            h += 12  # 三点半, "half past four": a spoken hour of 1-6 is in the afternoon
        out.append(
            _Cand(
                m.start(),
                end,
                "time",
                _hm(h, mi),
                1.0,
                {"h": h, "raw": raw, "mi": mi, "pod": pod, "fixed": bool(pod) or ampm},
            )
        )

    for m in _find(_RE_ZH_TIME, t):
        h = _small(m["h"])
        pod = _POD_ZH.get(m["pod"]) if m["pod"] else None
        end = m.end()
        mi = 0
        if m["half"]:
            mi = 30
        elif m["q"]:
            mi = 15 if m["q"] == "一刻" else 45
        elif m["mi"]:
            v = _small(m["mi"])
            if v is None:
                end = m.end("mk")
            else:
                mi = v
        if h is None:
            continue
        if m["h"] == "一" and m["mk"] == "点" and not pod and end == m.end("mk"):
            continue  # 快一点, 便宜一点: "a little", not one o'clock
        add(m, end, _shift_hour(h, pod), mi, pod, False, spoken=True)
    for m in _find(_RE_COLON, t):
        h, mi = int(m["h"]), int(m["mi"])
        pod = _POD_ZH.get(m["pod"]) if m["pod"] else None
        if m["ap"]:
            add(m, m.end(), _shift_hour(h, None, m["ap"].lower() == "p"), mi, pod, True)
        else:
            add(m, m.end(), _shift_hour(h, pod), mi, pod, False)
    for m in _find(_RE_AMPM, t):
        h = _small(m["h"])
        if h is not None:
            mi = int(m["mi"]) if m["mi"] else 0
            add(m, m.end(), _shift_hour(h, None, m["ap"].lower() == "p"), mi, None, True)
    for m in _find(_RE_OCLOCK, t):
        h = _small(m["h"])
        if h is not None:
            add(m, m.end(), h, 0, None, False, spoken=True)
    for m in _find(_RE_PAST, t):
        h = _small(m["h"])
        if h is None:
            continue
        mi = 30 if m["q"].lower() == "half" else 15
        if m["rel"].lower() == "to":
            h, mi = (h - 1) % 12 or 12, 60 - mi
        add(m, m.end(), h, mi, None, False, spoken=True)
    for m in _find(_RE_NOON, t):
        h = 0 if m[0].lower() == "midnight" else 12
        add(m, m.end(), h, 0, None, True)


def _parts_of_day(t: str, today: dt.date, out: list[_Cand]) -> None:
    for m in _find(_RE_POD_ZH, t):
        out.append(
            _Cand(m.start(), m.end(), "part_of_day", _POD_ZH[m[0]], 1.0, {"pod": _POD_ZH[m[0]]})
        )
    for m in _find(_RE_POD_ZH_SHORT, t):
        out.append(
            _Cand(m.start(), m.end(), "part_of_day", _POD_ZH[m[0]], 1.0, {"pod": _POD_ZH[m[0]]})
        )
    for m in _find(_RE_POD_EN, t):
        w = m[0].lower()
        if w == "tonight":  # the part of day that names its date: "tonight at 8" is a date-time
            info = {"pod": "evening", "date": today}
            out.append(_Cand(m.start(), m.end(), "part_of_day", "evening", 1.0, info))
        else:
            out.append(_Cand(m.start(), m.end(), "part_of_day", w, 1.0, {"pod": w}))


# ---------------------------------------------------------------- numbers in any script

_RE_AR_NUMBER = re.compile(_AR_NUM)
_RE_CN_NUMBER = re.compile(f"{_CN_NUM}(?![{_CN_CHARS}])")
_RE_EN_NUMBER = re.compile(_EN_NUM, re.I)


@dataclass(slots=True)
class _Num:
    start: int
    end: int
    value: float
    script: str  # "ar" (digits), "cn" (Chinese numerals), "en" (English words)


def _raw_numbers(t: str) -> list[_Num]:
    """Every number of the text, each found once; durations, money and numbers build on them."""
    nums: list[_Num] = []
    for m in _RE_AR_NUMBER.finditer(t):
        v = float(m[0]) if m[0].isdecimal() else parse_number(m[0])
        if v is not None:
            nums.append(_Num(m.start(), m.end(), v, "ar"))
    for m in _RE_CN_NUMBER.finditer(t):
        s = m[0]
        v = _cn_value(s)
        if v is not None and not (len(s) == 2 and s[0] in _CN_DIGIT and s[1] in _CN_DIGIT):
            nums.append(_Num(m.start(), m.end(), v, "cn"))
            continue
        # 五一, 三五: two digits without a unit are two numbers (三块五一瓶), not 51
        for i, ch in enumerate(s):
            if ch in _CN_DIGIT:
                nums.append(_Num(m.start() + i, m.start() + i + 1, float(_CN_DIGIT[ch]), "cn"))
    for m in _find(_RE_EN_NUMBER, t):
        v = _en_value(m[0])
        if v is not None:
            nums.append(_Num(m.start(), m.end(), v, "en"))
            continue
        for w in re.finditer(_EN_WORD, m[0], re.I):  # "two three": each word alone
            wv = _en_value(w[0])
            if wv is not None and w[0].lower() not in _EN_SCALE:
                nums.append(_Num(m.start() + w.start(), m.start() + w.end(), wv, "en"))
    return nums


# ---------------------------------------------------------------- durations

_DUR_ZH_UNIT = {
    "分钟": "minute",
    "小时": "hour",
    "钟头": "hour",
    "工作日": "day",
    "天": "day",
    "星期": "week",
    "礼拜": "week",
    "周": "week",
    "月": "month",
    "年": "year",
}
# after a number: [个][半][个]unit[半] (一天半, 两个半小时, 一个半月, 两个工作日)
_RE_DUR_ZH_AFTER = re.compile(
    r"(?P<ge>个)?(?P<h1>半)?(?:个)?(?P<u>分钟|小时|钟头|工作日|天|星期|礼拜|周|月|年)(?P<h2>半)?"
)
_RE_DUR_ZH_HALF = re.compile(r"半个?(?P<u>小时|钟头|工作日|天|星期|礼拜|月|年)")
_DUR_EN_UNIT = {
    "min": "minute",
    "hou": "hour",
    "hr": "hour",
    "hrs": "hour",
    "h": "hour",
    "day": "day",
    "wee": "week",
    "wk": "week",
    "wks": "week",
    "mon": "month",
    "yea": "year",
    "yr": "year",
    "yrs": "year",
}
_EN_UNIT = r"(?P<u>minutes?|mins?|hours?|hrs?|hr|h|days?|weeks?|wks?|wk|months?|years?|yrs?|yr)\b"
_AND_A_HALF = r"\s{1,2}and\s{1,2}a\s{1,2}half\b"
_RE_DUR_EN_AFTER = re.compile(
    rf"(?P<h1>{_AND_A_HALF})?[\s-]{{0,2}}(?:(?:working|business|work)\s{{1,2}})?{_EN_UNIT}"
    rf"(?P<h2>{_AND_A_HALF})?",
    re.I,
)
_RE_DUR_EN_A = re.compile(
    rf"\ban?\s{{1,2}}(?:(?:working|business|work)\s{{1,2}})?{_EN_UNIT}(?P<h2>{_AND_A_HALF})?",
    re.I,
)
_RE_DUR_EN_HALF = re.compile(
    r"\bhalf(?:\s{1,2}an?\s{1,2}|[\s-]{1,2})(?P<u>hour|day|week|month|year)\b", re.I
)
_RE_FREQ_BEFORE = re.compile(r"(?:times|once|twice|per)\s{1,2}$", re.I)


def _en_unit(u: str) -> str | None:
    u = u.lower()
    return _DUR_EN_UNIT.get(u) or _DUR_EN_UNIT.get(u[:3])


def _durations(t: str, nums: list[_Num], out: list[_Cand]) -> None:
    def add(start: int, end: int, amount: float, unit: str) -> None:
        out.append(_Cand(start, end, "duration", {"amount": float(amount), "unit": unit}))

    for n in nums:
        if n.script == "en":
            m = _RE_DUR_EN_AFTER.match(t, n.end)
            if m is None or m.start("u") == n.end or m["u"].lower() == "h":
                continue  # "twoh", "two h": no duration
        else:
            pos = n.end + 1 if n.script == "ar" and t[n.end : n.end + 1] == " " else n.end
            m = _RE_DUR_ZH_AFTER.match(t, pos)
            if m is not None:
                u = m["u"]
                if u == "月" and not (m["ge"] or m["h1"]):
                    continue  # 3月 is March
                if u == "年" and n.value >= 100:
                    continue  # 2026年 is a year
                if m["h1"] and m["h2"]:
                    continue
                half = 0.5 if (m["h1"] or m["h2"]) else 0.0
                add(n.start, m.end(), n.value + half, _DUR_ZH_UNIT[u])
                continue
            if n.script != "ar":
                continue
            m = _RE_DUR_EN_AFTER.match(t, n.end)
            if m is None:
                continue
        unit = _en_unit(m["u"])
        if unit is not None:
            half = 0.5 if (m["h1"] or m["h2"]) else 0.0
            add(n.start, m.end(), n.value + half, unit)
    for m in _find(_RE_DUR_ZH_HALF, t):
        add(m.start(), m.end(), 0.5, _DUR_ZH_UNIT[m["u"]])
    for m in _find(_RE_DUR_EN_A, t):
        if _RE_FREQ_BEFORE.search(t, max(0, m.start() - 8), m.start()):
            continue  # three times a day: a frequency
        unit = _en_unit(m["u"])
        if unit is not None and m["u"].lower() != "h":
            add(m.start(), m.end(), 1.5 if m["h2"] else 1.0, unit)
    for m in _find(_RE_DUR_EN_HALF, t):
        add(m.start(), m.end(), 0.5, m["u"].lower())


# ---------------------------------------------------------------- relative dates from numbers

# 3天后, 两周以后; "in 3 days", "2 weeks from now"
_RE_AFTER_ZH = re.compile(
    r"个?(?P<half1>半)?个?(?P<u>天|星期|礼拜|周|小时|钟头|分钟)(?P<half>半)?(?:以后|之后|后)"
)
_RE_AFTER_EN = re.compile(
    r"\s{1,2}(?P<u>days?|weeks?|hours?|hrs?|minutes?|mins?)"
    r"(?P<later>\s(?:later|from\s(?:now|today)))?\b",
    re.I,
)
_RE_IN_BEFORE = re.compile(r"\bin\s{1,2}$", re.I)
_RE_IN_A = re.compile(r"\bin\s{1,2}(?:an?|half\s{1,2}an?)\s{1,2}(?P<u>day|week|hour)\b", re.I)
_RE_HALF_HOUR_AFTER = re.compile(r"半个?(?:小时|钟头)(?:以后|之后|后)")
_AFTER_SECONDS = {"d": 86400, "w": 604800, "h": 3600, "m": 60}


def _after_unit(u: str) -> str:
    """d(ay), w(eek), h(our) or m(inute) of a unit word (天, 个星期, hrs, mins ...)."""
    u = u.lower().lstrip("个")
    if u in ("天",) or u.startswith("day"):
        return "d"
    if u in ("星期", "礼拜", "周") or u.startswith("week"):
        return "w"
    if u in ("小时", "钟头") or u.startswith("h"):
        return "h"
    return "m"


def _after(t: str, nums: list[_Num], now: dt.datetime, out: list[_Cand]) -> None:
    """3天后, 两周以后, "in 3 days": a date; 两小时后, 半小时后, "in 2 hours": a date-time from ``now``."""

    def add(start: int, end: int, n: float, unit: str) -> None:
        if not 0 <= n <= 3660:
            return
        if unit in ("d", "w"):
            if not float(n).is_integer():
                return
            d = now.date() + dt.timedelta(days=int(n) * (7 if unit == "w" else 1))
            out.append(_Cand(start, end, "date", d.isoformat(), 1.0, {"date": d, "kind": "rel"}))
            return
        at = now + dt.timedelta(seconds=n * _AFTER_SECONDS[unit])
        value = at.strftime("%Y-%m-%dT%H:%M")
        info = {"date": at.date(), "h": at.hour, "raw": at.hour, "mi": at.minute, "pod": None}
        out.append(_Cand(start, end, "datetime", value, 1.0, info | {"fixed": True}))

    for n in nums:
        if n.script in ("ar", "cn"):
            pos = n.end + 1 if t[n.end : n.end + 1] == " " and n.script == "ar" else n.end
            m = _RE_AFTER_ZH.match(t, pos)
            if m is not None:
                half = 0.5 if (m["half"] or m["half1"]) else 0.0
                add(n.start, m.end(), n.value + half, _after_unit(m["u"]))
                continue
        if n.script in ("ar", "en"):
            m = _RE_AFTER_EN.match(t, n.end)
            if m is None:
                continue
            unit = _after_unit(m["u"])
            if m["later"]:
                add(n.start, m.end(), n.value, unit)
            else:
                before = _RE_IN_BEFORE.search(t, max(0, n.start - 5), n.start)
                if before is not None:
                    add(before.start(), m.end(), n.value, unit)
    for m in _find(_RE_IN_A, t):
        half = 0.5 if "half" in m[0].lower() else 1.0
        add(m.start(), m.end(), half, _after_unit(m["u"]))
    for m in _find(_RE_HALF_HOUR_AFTER, t):
        add(m.start(), m.end(), 0.5, "h")


# ---------------------------------------------------------------- money

_CURRENCY = {
    "$": "USD",
    "us$": "USD",
    "¥": "CNY",
    "€": "EUR",
    "£": "GBP",
    "hk$": "HKD",
    "rmb": "CNY",
    "cny": "CNY",
    "usd": "USD",
    "eur": "EUR",
    "gbp": "GBP",
    "jpy": "JPY",
    "hkd": "HKD",
    "块钱": "CNY",
    "块": "CNY",
    "元": "CNY",
    "圆": "CNY",
    "人民币": "CNY",
    "美元": "USD",
    "美金": "USD",
    "欧元": "EUR",
    "日元": "JPY",
    "英镑": "GBP",
    "港币": "HKD",
    "港元": "HKD",
    "dollar": "USD",
    "dollars": "USD",
    "buck": "USD",
    "bucks": "USD",
    "yuan": "CNY",
    "euro": "EUR",
    "euros": "EUR",
    "pound": "GBP",
    "pounds": "GBP",
    "yen": "JPY",
}
_RE_MONEY_PREFIX = re.compile(
    r"(?:us\$|hk\$|\$|¥|€|£|(?<![a-z])(?:rmb|cny|usd|eur|gbp|jpy|hkd))\s{0,2}", re.I
)
_RE_MONEY_AFTER = re.compile(
    r"\s{0,2}(?P<c>块钱|块|元|圆|人民币|美元|美金|欧元|日元|英镑|港币|港元|"
    r"(?:dollars?|bucks?|usd|rmb|cny|yuan|euros?|eur|pounds?|gbp|yen|jpy|hkd)\b)"
    r"(?:(?P<jiao>[1-9一二三四五六七八九])(?P<jm>[毛角])?(?![\d天个日月年小分点号万千百块元钱]))?",
    re.I,
)


def _money(t: str, nums: list[_Num], out: list[_Cand]) -> None:
    def add(start: int, end: int, amount: float, cur: str) -> None:
        out.append(_Cand(start, end, "amount", {"amount": float(amount), "currency": cur}))

    ar_at = {n.start: n for n in nums if n.script == "ar"}
    for m in _find(_RE_MONEY_PREFIX, t):
        n = ar_at.get(m.end())
        if n is not None:
            add(m.start(), n.end, n.value, _CURRENCY[m[0].strip().lower()])
    for n in nums:
        m = _RE_MONEY_AFTER.match(t, n.end)
        if m is None:
            continue
        c = m["c"].lower()
        amount, end = n.value, m.end()
        if m["jiao"]:
            if c in ("块", "元", "块钱") and (m["jm"] or c == "块"):
                amount += (_small(m["jiao"]) or 0) / 10
            else:
                end = m.end("c")
        add(n.start, end, amount, _CURRENCY[c])


# ---------------------------------------------------------------- numbers

_MEASURE = "个位名张次份台间本件条只杯瓶把辆套层号人岁遍页项周天年小分块元倍"
_RE_WORD_CHAR = re.compile(r"\w")
_NOT_NUMBER = {"万一", "一一", "千万", "一万一"}
_RE_ONE_PRONOUN = re.compile(
    r"(?:the|this|that|which|any|every|each|no|some|another|other|one)\s{1,2}$", re.I
)


def _numbers(t: str, nums: list[_Num], out: list[_Cand]) -> None:
    stripped = t.strip()
    for n in nums:
        s = t[n.start : n.end]
        if n.script == "cn":
            if s in _NOT_NUMBER:
                continue
            if len(s) == 1 and s != stripped:
                prv = t[n.start - 1 : n.start]
                nxt = t[n.end : n.end + 1]
                alone = not _RE_WORD_CHAR.match(prv) and not _RE_WORD_CHAR.match(nxt)
                if not alone and (not nxt or nxt not in _MEASURE):
                    continue  # 统一, 一起, 一些: a single numeral counts only before a measure word
        elif n.script == "en" and s.lower() == "one":
            if (
                _RE_ONE_PRONOUN.search(t, max(0, n.start - 10), n.start)
                or t[n.end : n.end + 3].lower() == " of"
            ):
                continue  # "this one", "one of them"
        out.append(_Cand(n.start, n.end, "number", _intish(n.value), 1.0))


# ---------------------------------------------------------------- composition

_GAP_DT = re.compile(r"\s{0,2}(?:的|,\s?|，|at\s{1,2}|@\s?)?\s{0,2}", re.I)
_GAP_TD = re.compile(r"\s{0,2}(?:,\s?|，)?\s{0,2}(?:on\s{1,2})?", re.I)
_RANGE_SEP = re.compile(
    r"\s{0,2}(?:到|至|-|~|—|–|－|～|(?:to|until|till|through|thru|and)\b)\s{0,2}", re.I
)
_BETWEEN_BEFORE = re.compile(r"between\s{1,2}$", re.I)
_RE_AT = re.compile(r"\bat\s{1,2}$", re.I)
_RE_AT_HOUR = re.compile(r"(?P<h>1[0-2]|0?[1-9])(?![\d:.]|\s{0,2}(?:[ap]\.?m\b|o'?clock))", re.I)
_GAP_DUR = re.compile(r"\s{0,2}(?:and\s{1,2}|又|零)?", re.I)
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400, "week": 604800}
_UNIT_SECONDS.update({"month": 2592000, "year": 31536000})
_RE_END_DAY = re.compile(rf"(?P<d>[0-3]?\d|{_CN_DAY})(?:\s?[日号]|st|nd|rd|th)?(?![\d])")


def _index(cands: list[_Cand], kind: str) -> dict[int, _Cand]:
    by_start: dict[int, _Cand] = {}
    for c in cands:
        if c.entity == kind:
            old = by_start.get(c.start)
            if old is None or c.end > old.end:
                by_start[c.start] = c
    return by_start


def _datetime(start: int, end: int, day: dt.date, h: int, mi: int, pod, conf: float) -> _Cand:
    value = f"{day.isoformat()}T{_hm(h, mi)}"
    info = {"date": day, "h": h, "raw": h, "mi": mi, "pod": pod, "fixed": True}
    return _Cand(start, end, "datetime", value, conf, info)


def _range_end(
    t: str, a: _Cand, dates: dict[int, _Cand]
) -> tuple[dt.date, int, _Cand | None] | None:
    """The end of a date range that starts with date ``a`` (下周一[到周三], Dec 21[ to 23])."""
    sep = _RANGE_SEP.match(t, a.end)
    if sep is None:
        return None
    word = t[sep.start() : sep.end()].strip().lower()
    if word == "and" and not _BETWEEN_BEFORE.search(t, max(0, a.start - 10), a.start):
        return None
    j = sep.end()
    start = a.info["date"]
    b = dates.get(j)
    if b is not None:
        kind = b.info.get("kind")
        if kind == "weekday" and b.info.get("bare"):
            end = start + dt.timedelta(days=(b.info["wd"] - start.weekday()) % 7)
        elif kind == "bare_day":
            end = _day_after(start, b.info["day"])
        elif kind == "md" and not b.info.get("year"):
            end = b.info["date"]
            if end < start:
                end = _date_or_none(end.year + 1, end.month, end.day)
            elif end.year > start.year and end.replace(year=start.year) >= start:
                end = end.replace(year=start.year)
        else:
            end = b.info["date"]
        return (end, b.end, b) if end is not None and end >= start else None
    if a.info.get("kind") == "md":
        m = _RE_END_DAY.match(t, j)
        if m is not None and not (m.end() < len(t) and t[m.end()] in "月:点时/."):
            d = _small(m["d"])
            end = _day_after(start, d) if d is not None else None
            if end is not None and end >= start:
                return end, m.end(), None
    return None


def _compose(t: str, cands: list[_Cand]) -> list[_Cand]:
    dates = _index(cands, "date")
    times = _index(cands, "time")
    pods = _index(cands, "part_of_day")
    durations = _index(cands, "duration")
    new: list[_Cand] = []

    # date to date -> date_range; a date that ends a range does not start a date-time
    # (周一至周五早上八点半: the range, then the time)
    range_ends: set[int] = set()
    for a in list(dates.values()):
        found = _range_end(t, a, dates)
        if found is None:
            continue
        end, b_end, b = found
        if b is not None:
            range_ends.add(b.start)
        start = a.info["date"]
        value = {"start": start.isoformat(), "end": end.isoformat()}
        new.append(_Cand(a.start, b_end, "date_range", value, 1.0, {"date": start, "end": end}))

    # period to period (1月到3月, 本周到下周) -> one date_range from the first's start
    periods = _index(cands, "date_range")
    for a in list(periods.values()):
        sep = _RANGE_SEP.match(t, a.end)
        b = periods.get(sep.end()) if sep is not None else None
        if b is None or t[sep.start() : sep.end()].strip().lower() == "and":
            continue
        start, end = a.info["date"], b.info["end"]
        if end.year > start.year and b.info["date"].replace(year=start.year) > start:
            end = end.replace(year=start.year)  # 1月到3月: the same year as the start
        if end >= start:
            value = {"start": start.isoformat(), "end": end.isoformat()}
            new.append(_Cand(a.start, b.end, "date_range", value, 1.0, {"date": start, "end": end}))

    # date [pod] time -> datetime; also a part of day that names its date (tonight, 今晚)
    heads = [d for d in dates.values() if d.start not in range_ends]
    heads += [p for p in pods.values() if "date" in p.info]
    for d in heads:
        j = _GAP_DT.match(t, d.end).end()
        pod = d.info.get("pod")
        p = pods.get(j) if t[d.end : j].strip() == "" and j not in times else None
        if p is not None and pod is None:
            pod = p.info["pod"]
            j = _GAP_DT.match(t, p.end).end()
        tm = times.get(j)
        if tm is not None:
            h = tm.info["h"]
            if pod and not tm.info["fixed"]:
                h = _shift_hour(tm.info["raw"], pod)
                if h is None:
                    continue
            conf = min(d.confidence, tm.confidence)
            new.append(_datetime(d.start, tm.end, d.info["date"], h, tm.info["mi"], pod, conf))
            continue
        m = _RE_AT_HOUR.match(t, j) if _RE_AT.search(t, max(0, j - 4), j) else None
        if m is not None:  # "tomorrow at 3", "tonight at 8": a bare hour after "at"
            raw = int(m["h"])
            h = _shift_hour(raw, pod) if pod else (raw + 12 if 1 <= raw <= 6 else raw)
            if h is not None and 1 <= raw <= 12:
                new.append(_datetime(d.start, m.end(), d.info["date"], h, 0, pod, d.confidence))

    # time [on] date -> datetime ("3pm tomorrow", "3pm on Friday")
    for tm in list(times.values()):
        j = _GAP_TD.match(t, tm.end).end()
        d = dates.get(j) if j > tm.end else None
        if d is not None:
            conf = min(d.confidence, tm.confidence)
            new.append(
                _datetime(
                    tm.start,
                    d.end,
                    d.info["date"],
                    tm.info["h"],
                    tm.info["mi"],
                    tm.info["pod"],
                    conf,
                )
            )

    # time to time: the second inherits the part of day (and the date) of the first
    firsts = {c.end: c for c in new if c.entity == "datetime"}
    for a in [*times.values(), *firsts.values()]:
        sep = _RANGE_SEP.match(t, a.end)
        if sep is None or t[sep.start() : sep.end()].strip().lower() == "and":
            continue
        b = times.get(sep.end())
        if b is None:
            continue
        h = b.info["h"]
        if not b.info["fixed"] and a.info.get("pod"):
            h = _shift_hour(b.info["raw"], a.info["pod"])
        elif not b.info["fixed"] and a.info["h"] >= 12 and h < 12 and h + 12 > a.info["h"]:
            h = h + 12
        if h is None:
            continue
        if a.entity == "datetime":
            new.append(
                _datetime(b.start, b.end, a.info["date"], h, b.info["mi"], None, b.confidence)
            )
        elif h != b.info["h"]:
            new.append(_Cand(b.start, b.end, "time", _hm(h, b.info["mi"]), b.confidence, {}))

    # 1小时30分钟, "2 hours 30 minutes", "1 hour and 15 minutes": one duration, the larger unit
    for a in list(durations.values()):
        j = _GAP_DUR.match(t, a.end).end()
        b = durations.get(j)
        if b is None:
            continue
        ua, ub = a.value["unit"], b.value["unit"]
        if _UNIT_SECONDS[ub] >= _UNIT_SECONDS[ua]:
            continue
        amount = a.value["amount"] + b.value["amount"] * _UNIT_SECONDS[ub] / _UNIT_SECONDS[ua]
        value = {"amount": round(amount, 6), "unit": ua}
        new.append(_Cand(a.start, b.end, "duration", value, 1.0))
    return new


def _day_after(start: dt.date, day: int) -> dt.date | None:
    """Day ``day`` of ``start``'s month, or of the next month when that is before ``start``."""
    d = _date_or_none(start.year, start.month, day)
    if d is None or d < start:
        nm = (start.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
        d = _date_or_none(nm.year, nm.month, day)
    return d


def _gates() -> dict:
    return {
        _RE_ZH_MD: ("月",),
        _RE_ZH_REL_MONTH_DAY: ("月",),
        _RE_BARE_DAY: ("日", "号"),
        _RE_ZH_REL: ("天", "日"),
        _RE_ZH_SHORT_DAY: ("晚", "早"),
        _RE_ZH_WEEKDAY: ("周", "星期", "礼拜"),
        _RE_ISO: ("-", "/", "."),
        _RE_SLASH: ("/",),
        _RE_HOLIDAY: (
            "元旦",
            "节",
            "国庆",
            "圣诞",
            "平安夜",
            "year",
            "valentine",
            "halloween",
            "christmas",
        ),
        _RE_EN_REL: ("today", "tomorrow", "yesterday", "tmr"),
        _RE_EN_WEEKDAY: ("mon", "tue", "wed", "thu", "fri", "sat", "sun"),
        _RE_ZH_WEEK: ("周", "星期", "礼拜"),
        _RE_ZH_MONTH: ("月",),
        _RE_ZH_MONTH_NAMED: ("月",),
        _RE_ZH_END: ("底", "末"),
        _RE_EN_END: ("end",),
        _RE_EN_MONTH_NAMED: _MONTH_KEYS,
        _RE_EN_WEEK: ("week", "month"),
        _RE_ZH_TIME: ("点", "时"),
        _RE_COLON: (":",),
        _RE_AMPM: ("m",),
        _RE_OCLOCK: ("clock",),
        _RE_PAST: ("past", "to"),
        _RE_NOON: ("noon", "midday", "midnight"),
        _RE_POD_ZH: ("晨", "午", "晚", "夜", "昏", "早"),
        _RE_POD_ZH_SHORT: ("晚", "早"),
        _RE_POD_EN: ("morning", "afternoon", "evening", "night"),
        _RE_DUR_ZH_HALF: ("半",),
        _RE_DUR_EN_A: ("min", "hour", "hr", "day", "week", "wk", "month", "year", "yr"),
        _RE_DUR_EN_HALF: ("half",),
        _RE_IN_A: ("in",),
        _RE_HALF_HOUR_AFTER: ("半",),
        _RE_MONEY_PREFIX: ("$", "¥", "€", "£", "rmb", "cny", "usd", "eur", "gbp", "jpy", "hkd"),
        _RE_EN_NUMBER: (*_EN_VALUE, *_EN_SCALE),  # every number word (the teens too)
        _RE_EN_MD: _MONTH_KEYS,
        _RE_EN_DM: _MONTH_KEYS,
    }


_MONTH_KEYS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_GATES: dict = _gates()


def _find(rx: re.Pattern, t: str):
    """``rx.finditer(t)``, skipped when ``t`` lacks every word the pattern needs (a fast
    substring test before a scan)."""
    keys = _GATES.get(rx)
    if keys is not None and not _contains_any(t, keys):
        return ()
    return rx.finditer(t)


def _contains_any(t: str, words: tuple[str, ...]) -> bool:
    """Whether one of ``words`` is in ``t`` (a plain loop: no generator per call)."""
    for w in words:
        if w in t:
            return True
    return False


def _resolve(cands: list[_Cand], n: int) -> list[_Cand]:
    """Longest first (then type priority, then later-composed, then earliest); each character
    belongs to at most one entity."""
    taken = bytearray(n)
    kept: list[_Cand] = []
    prio = _PRIORITY
    keys = [(c.start - c.end, prio[c.entity], -i, c.start) for i, c in enumerate(cands)]
    for i in sorted(range(len(cands)), key=keys.__getitem__):
        c = cands[i]
        if taken.find(1, c.start, c.end) != -1:
            continue
        taken[c.start : c.end] = b"\x01" * (c.end - c.start)
        kept.append(c)
    kept.sort(key=lambda c: c.start)
    return kept


# the 4 non-ASCII letters an re.I pattern matches to ASCII ones (İ ı: i, ſ: s, K: k)
_ODD_CASE = ("\u0130", "\u0131", "\u017f", "\u212a")
# one of these is in every text the English from-now patterns match (the text folded:
# ASCII lower case); the Chinese ones all need 后
_CLOCK_WORDS_EN = ("day", "week", "hour", "hr", "min", "in")


def reads_clock(text: str) -> bool:
    """Whether the entities of ``text`` may depend on ``now`` beyond its date: a from-now
    phrase (两小时后, "in 2 hours", 3天后 ...) is present. When False,
    :func:`find_system_entities` gives the same result for every ``now`` on ``today`` (so a
    cache keyed by the text and the date is exact). Conservative: a match anywhere is True."""
    t = _fold(text)
    if (
        "后" not in t
        and not _contains_any(t, _CLOCK_WORDS_EN)
        and not _contains_any(t, _ODD_CASE)  # a letter re.I reads as an ASCII one
    ):
        return False  # no word every from-now pattern needs (most texts)
    return any(
        rx.search(t) is not None
        for rx in (_RE_AFTER_ZH, _RE_AFTER_EN, _RE_IN_A, _RE_HALF_HOUR_AFTER)
    )


def find_system_entities(
    text: str, today: dt.date | None = None, now: dt.datetime | None = None
) -> list[Entity]:
    """The dates, times, parts of day, date-times, date ranges, durations, numbers and amounts
    of money in ``text`` (zh and en), non-overlapping, in text order; values as in
    :mod:`dingskill.nlu.entity`. Relative dates resolve against ``today`` (default: the date of
    ``now``, else the system date); hours and minutes from now (两小时后, "in 2 hours") against
    ``now`` (default: the current clock time on ``today``)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if now is None:
        now = dt.datetime.now()
        if today is not None:  # "in 2 hours" on the given day, at the current clock time
            now = dt.datetime.combine(today, now.time())
    if today is None:
        today = now.date()
    if not text:
        return []
    t = _fold(text)
    cands: list[_Cand] = []
    _dates(t, today, cands)
    _ranges_of_periods(t, today, cands)
    _times(t, cands)
    _parts_of_day(t, today, cands)
    nums = _raw_numbers(t)
    _durations(t, nums, cands)
    _money(t, nums, cands)
    _after(t, nums, now, cands)
    _numbers(t, nums, cands)
    cands.extend(_compose(t, cands))
    return [
        Entity(c.start, c.end, c.entity, c.value, c.confidence, EntitySource.SYSTEM)
        for c in _resolve(cands, len(t))
    ]
