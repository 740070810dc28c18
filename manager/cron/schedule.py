"""A job's SPEC as an APScheduler trigger, and the fire times between two instants.

SPEC is a crontab line of 5 fields (minute hour day-of-month month day-of-week), or of 6
with the seconds FIRST (robfig/cron's `cron.WithSeconds()` order, which Go schedulers and
Kubernetes users know), a macro (@yearly @annually @monthly @weekly @daily @midnight
@hourly) or `@every DURATION`. The fields are checked here, not by APScheduler, so that a
mistake is named in crontab's words ("day of month: 61 is out of 1-31") and crontab's
meanings hold where APScheduler's differ: day of week 0 and 7 are Sunday (APScheduler
counts from Monday), and when both day fields are restricted a day matching EITHER runs
(cron's rule; APScheduler alone would want both), done with an OrTrigger.

An `@every` interval is anchored at the job's creation (a whole second), so that every
manager computes the same fire times: the run keys that make runs exactly-once are those
times.
"""

from __future__ import annotations

import datetime
import zoneinfo
from dataclasses import dataclass

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from flock.common.durations import parse_duration
from flock.manager.cron.errors import InvalidSchedule, UnknownTimeZone

MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
APS_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]  # APScheduler takes names
MIN_INTERVAL = 1.0  # seconds: below that a run could not even be created in time


@dataclass(frozen=True)
class Field:
    name: str  # as the error names it
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] means low + i


SECOND = Field("second", 0, 59)
MINUTE = Field("minute", 0, 59)
HOUR = Field("hour", 0, 23)
DAY = Field("day of month", 1, 31)
MONTH = Field("month", 1, 12, tuple(MONTHS))
WEEKDAY = Field("day of week", 0, 7, tuple(DAYS))  # 7 is Sunday too


def zone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA zone `name`; UnknownTimeZone when this machine has no such zone."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise UnknownTimeZone(f'unknown time zone "{name}": use an IANA name such as UTC, '
                              "Europe/Paris or America/New_York") from None


def parse_schedule(spec: str, time_zone: str = "UTC", anchor: float = 0.0) -> BaseTrigger:
    """The trigger for `spec` in `time_zone`; `anchor` (epoch) starts an `@every`.
    InvalidSchedule names the bad field, UnknownTimeZone the zone."""
    tz = zone(time_zone)
    text = " ".join(spec.split())
    if text.lower().startswith("@every"):
        return _interval(spec, text[len("@every"):].strip(), tz, anchor)
    if text.startswith("@"):
        expanded = MACROS.get(text.lower())
        if expanded is None:
            raise InvalidSchedule(f'invalid schedule "{spec}": unknown macro {text}: expected '
                                  "@yearly, @annually, @monthly, @weekly, @daily, @midnight, "
                                  "@hourly or @every DURATION")
        text = expanded
    parts = text.split(" ") if text else []
    if len(parts) == 5:
        parts = ["0", *parts]
    elif len(parts) != 6:
        raise InvalidSchedule(f'invalid schedule "{spec}": expected 5 fields (minute hour '
                              "day-of-month month day-of-week) or 6 with seconds first, "
                              f"got {len(parts)}")
    fields = (SECOND, MINUTE, HOUR, DAY, MONTH, WEEKDAY)
    values = [_expand(spec, f, p) for f, p in zip(fields, parts, strict=True)]
    second, minute, hour, day, month, weekday = (_aps(f, v) for f, v in
                                                 zip(fields, values, strict=True))
    if weekday != "*":
        weekday = ",".join(APS_DAYS[d % 7] for d in sorted({d % 7 for d in values[5]}))

    def cron(day_of_month: str, day_of_week: str) -> CronTrigger:
        return CronTrigger(second=second, minute=minute, hour=hour, day=day_of_month,
                           month=month, day_of_week=day_of_week, timezone=tz)

    if day != "*" and weekday != "*":  # cron's rule: either day field may match
        return OrTrigger([cron(day, "*"), cron("*", weekday)])
    return cron(day, weekday)


def _interval(spec: str, duration: str, tz: zoneinfo.ZoneInfo, anchor: float
              ) -> IntervalTrigger:
    try:
        seconds = parse_duration(duration)
    except ValueError as exc:
        raise InvalidSchedule(f'invalid schedule "{spec}": @every: {exc}') from None
    if seconds < MIN_INTERVAL:
        raise InvalidSchedule(f'invalid schedule "{spec}": @every: {duration or "nothing"} '
                              f"is below the {MIN_INTERVAL:g}s minimum")
    start = datetime.datetime.fromtimestamp(int(anchor), tz)
    return IntervalTrigger(seconds=seconds, start_date=start, timezone=tz)


def _expand(spec: str, field: Field, text: str) -> set[int]:
    """Every value `text` (a crontab field) allows, checked against `field`'s range."""
    out: set[int] = set()
    for part in text.split(","):
        out |= _expand_part(spec, field, part)
    return out


def _expand_part(spec: str, field: Field, part: str) -> set[int]:
    def bad(detail: str) -> InvalidSchedule:
        return InvalidSchedule(f'invalid schedule "{spec}": {field.name}: {detail}')

    base, slash, step_text = part.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit() or int(step_text) < 1:
            raise bad(f'step "{step_text}" must be a whole number of at least 1')
        step = int(step_text)
    if base in ("*", "?") and (base == "*" or field in (DAY, WEEKDAY)):
        first, last = field.low, field.high
    else:
        low_text, dash, high_text = base.partition("-")
        first = _value(field, low_text, bad)
        last = _value(field, high_text, bad) if dash else (field.high if slash else first)
        if first > last:
            raise bad(f"range {base} runs backwards")
    return set(range(first, last + 1, step))


def _value(field: Field, text: str, bad) -> int:
    lowered = text.lower()
    if lowered in field.names:
        return field.low + field.names.index(lowered)
    if not text.isdigit():
        names = f" or a name ({field.names[0]}...)" if field.names else ""
        raise bad(f'"{text}" is not a number{names}')
    value = int(text)
    if not field.low <= value <= field.high:
        raise bad(f"{value} is out of {field.low}-{field.high}")
    return value


def _aps(field: Field, values: set[int]) -> str:
    """APScheduler's text for a field: "*" when every value is allowed, else the list."""
    full = set(range(field.low, field.high + 1))
    if field is WEEKDAY:
        full = set(range(0, 7))
        values = {v % 7 for v in values}
    if values >= full:
        return "*"
    return ",".join(str(v) for v in sorted(values))


def fire_times(trigger: BaseTrigger, after: float, until: float, limit: int = 10_000
               ) -> list[float]:
    """The trigger's fire times t with after < t <= until (epoch seconds), oldest first,
    at most the newest `limit` of them."""
    tz = getattr(trigger, "timezone", None) or datetime.UTC
    out: list[float] = []
    cursor = datetime.datetime.fromtimestamp(after, tz) + datetime.timedelta(microseconds=1)
    while True:
        nxt = trigger.get_next_fire_time(None, cursor)
        if nxt is None or nxt.timestamp() > until:
            return out
        out.append(nxt.timestamp())
        if len(out) > limit:
            del out[0]
        cursor = nxt + datetime.timedelta(microseconds=1)


def next_fire(trigger: BaseTrigger, after: float) -> float | None:
    """The first fire time strictly after `after`, or None when there is none."""
    tz = getattr(trigger, "timezone", None) or datetime.UTC
    start = datetime.datetime.fromtimestamp(after, tz) + datetime.timedelta(microseconds=1)
    nxt = trigger.get_next_fire_time(None, start)
    return nxt.timestamp() if nxt is not None else None
