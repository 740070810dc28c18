"""Cron SPECs as triggers (manager/cron/schedule.py): crontab's fields and meanings
(robfig/cron's optional-seconds order, seconds first), macros, @every, zones, and the
errors that name the bad field."""

from __future__ import annotations

import datetime

import pytest

from flock.manager.cron.errors import InvalidSchedule, UnknownTimeZone
from flock.manager.cron.schedule import fire_times, next_fire, parse_schedule

UTC = datetime.UTC


def at(*parts: int, tz=UTC) -> float:
    return datetime.datetime(*parts, tzinfo=tz).timestamp()


def stamps(times: list[float], tz=UTC) -> list[str]:
    return [datetime.datetime.fromtimestamp(t, tz).strftime("%a %Y-%m-%d %H:%M:%S")
            for t in times]


def test_five_fields_are_minute_hour_dom_month_dow():
    trigger = parse_schedule("30 2 * * *")
    assert stamps(fire_times(trigger, at(2026, 12, 6), at(2026, 12, 8))) == [
        "Sun 2026-12-06 02:30:00", "Mon 2026-12-07 02:30:00"]


def test_six_fields_put_the_seconds_first():
    trigger = parse_schedule("*/20 0 12 * * *")
    assert stamps(fire_times(trigger, at(2026, 12, 6, 11), at(2026, 12, 6, 12, 1))) == [
        "Sun 2026-12-06 12:00:00", "Sun 2026-12-06 12:00:20", "Sun 2026-12-06 12:00:40"]


@pytest.mark.parametrize("dow", ["0", "7", "sun", "SUN"])
def test_sunday_is_0_and_7_as_in_crontab(dow):
    trigger = parse_schedule(f"0 0 * * {dow}")
    assert stamps([next_fire(trigger, at(2026, 12, 7))]) == ["Sun 2026-12-13 00:00:00"]


def test_weekday_ranges_and_steps_count_from_sunday():
    trigger = parse_schedule("0 9 * * 1-5")
    week = fire_times(trigger, at(2026, 12, 5), at(2026, 12, 12))
    assert [s[:3] for s in stamps(week)] == ["Mon", "Tue", "Wed", "Thu", "Fri"]
    every_other = fire_times(parse_schedule("0 0 * * */2"), at(2026, 12, 5, 1),
                             at(2026, 12, 12, 1))
    assert [s[:3] for s in stamps(every_other)] == ["Sun", "Tue", "Thu", "Sat"]


def test_both_day_fields_restricted_match_either_as_cron_does():
    # the 1st of the month OR a Monday (vixie cron; robfig/cron does the same)
    trigger = parse_schedule("0 0 1 * mon")
    got = stamps(fire_times(trigger, at(2026, 11, 28), at(2026, 12, 15)))
    assert got == ["Mon 2026-11-30 00:00:00", "Tue 2026-12-01 00:00:00",
                   "Mon 2026-12-07 00:00:00", "Mon 2026-12-14 00:00:00"]


@pytest.mark.parametrize("macro, expected", [
    ("@hourly", ["Sun 2026-12-06 01:00:00", "Sun 2026-12-06 02:00:00"]),
    ("@daily", ["Mon 2026-12-07 00:00:00"]),
    ("@midnight", ["Mon 2026-12-07 00:00:00"]),
])
def test_macros(macro, expected):
    assert stamps(fire_times(parse_schedule(macro), at(2026, 12, 6, 0, 30),
                             at(2026, 12, 7, 0, 30)))[:2] == expected


def test_yearly_monthly_weekly():
    start = at(2026, 12, 6, 12)
    assert stamps([next_fire(parse_schedule("@yearly"), start)]) == ["Fri 2027-01-01 00:00:00"]
    assert stamps([next_fire(parse_schedule("@annually"), start)]) == [
        "Fri 2027-01-01 00:00:00"]
    assert stamps([next_fire(parse_schedule("@monthly"), start)]) == [
        "Fri 2027-01-01 00:00:00"]
    assert stamps([next_fire(parse_schedule("@weekly"), start)]) == ["Sun 2026-12-13 00:00:00"]


def test_every_is_anchored_at_the_jobs_creation_on_every_manager():
    created = at(2026, 12, 6, 13, 0, 0) + 0.7  # the anchor is the whole second
    one = parse_schedule("@every 30s", "UTC", created)
    other = parse_schedule("@every 30s", "UTC", created)
    later = at(2026, 12, 6, 13, 1, 10)
    assert fire_times(one, later, later + 81) == fire_times(other, later, later + 81)
    assert stamps(fire_times(one, later, later + 81)) == [
        "Sun 2026-12-06 13:01:30", "Sun 2026-12-06 13:02:00", "Sun 2026-12-06 13:02:30"]


def test_time_zone_moves_the_fire_times():
    paris = datetime.timezone(datetime.timedelta(hours=1))  # Paris in December
    trigger = parse_schedule("0 3 * * *", "Europe/Paris")
    assert stamps([next_fire(trigger, at(2026, 12, 6))]) == ["Sun 2026-12-06 02:00:00"]
    assert stamps([next_fire(trigger, at(2026, 12, 6))], paris) == ["Sun 2026-12-06 03:00:00"]


@pytest.mark.parametrize("spec, message", [
    ("* * 61 * *", 'invalid schedule "* * 61 * *": day of month: 61 is out of 1-31'),
    ("* 24 * * *", 'invalid schedule "* 24 * * *": hour: 24 is out of 0-23'),
    ("60 * * * * *", 'invalid schedule "60 * * * * *": second: 60 is out of 0-59'),
    ("* * * 13 *", 'invalid schedule "* * * 13 *": month: 13 is out of 1-12'),
    ("* * * * 8", 'invalid schedule "* * * * 8": day of week: 8 is out of 0-7'),
    ("x * * * *", 'invalid schedule "x * * * *": minute: "x" is not a number'),
    ("* * * foo *", 'invalid schedule "* * * foo *": month: "foo" is not a number or a name '
                    "(jan...)"),
    ("*/0 * * * *", 'invalid schedule "*/0 * * * *": minute: step "0" must be a whole number '
                    "of at least 1"),
    ("5-3 * * * *", 'invalid schedule "5-3 * * * *": minute: range 5-3 runs backwards'),
    ("* * *", 'invalid schedule "* * *": expected 5 fields (minute hour day-of-month month '
              "day-of-week) or 6 with seconds first, got 3"),
    ("", 'invalid schedule "": expected 5 fields (minute hour day-of-month month '
         "day-of-week) or 6 with seconds first, got 0"),
    ("@often", 'invalid schedule "@often": unknown macro @often: expected @yearly, @annually, '
               "@monthly, @weekly, @daily, @midnight, @hourly or @every DURATION"),
    ("@every 500ms", 'invalid schedule "@every 500ms": @every: 500ms is below the 1s minimum'),
    ("@every soon", "invalid schedule \"@every soon\": @every: invalid duration 'soon': "
                    "expected a number and a unit (ns, us, ms, s, m, h), e.g. 20s, 1m, 1h30m"),
])
def test_bad_specs_name_the_field(spec, message):
    with pytest.raises(InvalidSchedule) as caught:
        parse_schedule(spec)
    assert str(caught.value) == message


def test_unknown_time_zone():
    with pytest.raises(UnknownTimeZone, match='unknown time zone "Mars/Olympus"'):
        parse_schedule("@daily", "Mars/Olympus")
    with pytest.raises(UnknownTimeZone):
        parse_schedule("@daily", "../../etc/passwd")


def test_fire_times_keeps_the_newest_when_limited():
    trigger = parse_schedule("@every 1s", "UTC", 0)
    assert fire_times(trigger, 100, 200, limit=3) == [198.0, 199.0, 200.0]
