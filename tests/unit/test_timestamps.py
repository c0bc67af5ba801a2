from datetime import datetime, timezone

import pytest

from worker.timestamps import iso, parse_duration, parse_time, zone

UTC = timezone.utc


def ts(*args, tz=UTC):
    return datetime(*args, tzinfo=tz).timestamp()


@pytest.mark.parametrize("text, expected", [
    ("2022-01-15T02:00:00Z", ts(2022, 1, 15, 2)),
    ("2022-01-15T02:00:00+10:00", ts(2022, 1, 14, 16)),
    ("2022-01-02 13:05+10", ts(2022, 1, 2, 3, 5)),          # Vero's hour-only offset
    ("2022-01-02 13:05+1000", ts(2022, 1, 2, 3, 5)),
    ("2022-01-15", ts(2022, 1, 15)),
    ("2022-01-15T02:00:00.250Z", ts(2022, 1, 15, 2) + 0.25),
    ("1642212000", 1642212000.0),                           # Unix seconds
    ("1642212000.5", 1642212000.5),
    ("1642212000123", 1642212000.123),                      # milliseconds
])
def test_accepted_formats(text, expected):
    assert parse_time(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["yesterday", "03/04/2024", "2022-02-30", "2022-13-01T00:00:00Z",
                                  "123456789012345678", "12:00"])
def test_rejected_formats(text):
    assert parse_time(text) is None


def test_naive_times_use_the_import_time_zone():
    paris = zone("Europe/Paris")
    assert parse_time("2022-07-01 12:00", paris) == ts(2022, 7, 1, 10)   # CEST = UTC+2
    assert parse_time("2022-01-01 12:00", paris) == ts(2022, 1, 1, 11)   # CET = UTC+1
    # an explicit offset wins over the zone
    assert parse_time("2022-01-01T12:00:00Z", paris) == ts(2022, 1, 1, 12)


def test_zone_names():
    assert zone("UTC") is UTC
    assert zone("Not/AZone") is None


def test_iso_is_utc_with_z():
    assert iso(ts(2022, 1, 2, 3, 5)) == "2022-01-02T03:05:00.000Z"


@pytest.mark.parametrize("text, seconds", [("72h", 259200), ("10d", 864000), ("30m", 1800), ("90", 90),
                                           ("none", None), ("off", None)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_bad_duration():
    with pytest.raises(ValueError):
        parse_duration("soon")
