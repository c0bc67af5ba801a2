import random
from datetime import UTC, datetime

import pytest

from worker.timestamps import check_zone, iso, parse_duration, parse_time, parse_times, time_problem, zone

UTC = UTC


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


# --- Local times the clocks skip or repeat (New York: 2024-03-10 02:00 -> 03:00, 2024-11-03 02:00 -> 01:00)

NEW_YORK = zone("America/New_York")


def test_a_local_time_the_clocks_skip_is_refused_naming_the_change():
    # Python reads it silently as 07:30Z, the instant of the real 03:30 (which then looked like its duplicate)
    assert parse_time("2024-03-10 02:30:00", NEW_YORK) is None
    assert time_problem("2024-03-10 02:30:00", NEW_YORK) == (
        "invalid_time", "'2024-03-10 02:30:00' does not exist in America/New_York: clocks went forward from "
                        "02:00 to 03:00 (EST to EDT) on 2024-03-10")
    assert parse_time("2024-03-10 02:30:00", NEW_YORK, dst="later") is None  # --dst chooses no skipped time
    assert parse_time("2024-03-10 03:30:00", NEW_YORK) == ts(2024, 3, 10, 7, 30)
    assert parse_time("2024-03-10 01:59:59", NEW_YORK) == ts(2024, 3, 10, 6, 59, 59)


def test_a_local_time_the_clocks_repeat_is_refused_unless_dst_chooses():
    assert parse_time("2024-11-03 01:30:00", NEW_YORK) is None
    code, message = time_problem("2024-11-03 01:30:00", NEW_YORK)
    assert code == "ambiguous_time"
    assert message == ("'2024-11-03 01:30:00' happened twice in America/New_York: clocks went back from 02:00 to "
                       "01:00 (EDT to EST) on 2024-11-03, so it is 2024-11-03T05:30:00.000Z (EDT) or "
                       "2024-11-03T06:30:00.000Z (EST); pass --dst earlier or --dst later to choose")
    assert parse_time("2024-11-03 01:30:00", NEW_YORK, dst="earlier") == ts(2024, 11, 3, 5, 30)
    assert parse_time("2024-11-03 01:30:00", NEW_YORK, dst="later") == ts(2024, 11, 3, 6, 30)
    assert parse_time("2024-11-03 00:59:59", NEW_YORK) == ts(2024, 11, 3, 4, 59, 59)
    assert parse_time("2024-11-03 02:00:00", NEW_YORK) == ts(2024, 11, 3, 7)


@pytest.mark.parametrize("text, seconds", [
    ("2024-03-10T02:30:00-05:00", ts(2024, 3, 10, 7, 30)),   # an offset names the instant: untouched
    ("2024-11-03T01:30:00Z", ts(2024, 11, 3, 1, 30)),
    ("2024-11-03 01:30:00-04:00", ts(2024, 11, 3, 5, 30)),
    ("1730597400", 1730597400.0),                              # Unix times too
    ("1730597400000", 1730597400.0),
])
def test_times_that_name_their_instant_are_not_read_in_the_zone(text, seconds):
    assert parse_time(text, NEW_YORK) == seconds
    assert parse_times([text], NEW_YORK) == [seconds]


def test_every_way_to_write_a_local_time_goes_through_the_zone():
    # Excel serials (45361.104166... is 2024-03-10 02:30) and --date-format patterns
    assert parse_time("45361.104166666664", NEW_YORK, ("excel",)) is None
    assert time_problem("45361.104166666664", NEW_YORK, ("excel",))[0] == "invalid_time"
    assert parse_time("45599.0625", NEW_YORK, ("excel",)) is None                # 2024-11-03 01:30
    assert parse_time("45599.0625", NEW_YORK, ("excel",), "later") == ts(2024, 11, 3, 6, 30)
    pattern = ("%m/%d/%Y %I:%M %p",)
    assert parse_time("03/10/2024 02:30 AM", NEW_YORK, pattern) is None
    assert "clocks went forward from 02:00 to 03:00" in time_problem("03/10/2024 02:30 AM", NEW_YORK, pattern)[1]
    assert time_problem("11/03/2024 01:30 AM", NEW_YORK, pattern)[0] == "ambiguous_time"
    assert parse_time("11/03/2024 01:30 AM", NEW_YORK, pattern, "earlier") == ts(2024, 11, 3, 5, 30)
    assert parse_time("11/03/2024 01:30 -0400", NEW_YORK, ("%m/%d/%Y %H:%M %z",)) == ts(2024, 11, 3, 5, 30)


def test_a_date_is_the_first_instant_of_its_day_whatever_the_clocks_did_at_midnight():
    santiago, apia = zone("America/Santiago"), zone("Pacific/Apia")
    # Santiago's clocks went from 00:00 to 01:00 on 2024-09-08: the day began at 01:00 (04:00Z)
    for text in ("2024-09-08", "20240908"):
        assert parse_time(text, santiago) == ts(2024, 9, 8, 4)
        assert parse_times([text], santiago) == [ts(2024, 9, 8, 4)]
    assert parse_time("09/08/2024", santiago, ("%m/%d/%Y",)) == ts(2024, 9, 8, 4)
    assert parse_time("2024-09-08 00:30", santiago) is None
    # on 2024-04-06 they went back from 24:00 to 23:00: 23:30 happened twice, 7 April began once
    assert time_problem("2024-04-06 23:30", santiago)[1].startswith(
        "'2024-04-06 23:30' happened twice in America/Santiago: clocks went back from 24:00 to 23:00 (-03 to -04) "
        "on 2024-04-06")
    assert parse_time("2024-04-07", santiago) == ts(2024, 4, 7, 4)
    # Samoa skipped 30 December 2011: no instant is that day's
    assert parse_time("2011-12-30", apia) is None
    assert time_problem("2011-12-30", apia) == (
        "invalid_time", "'2011-12-30' does not exist in Pacific/Apia: clocks went forward from 2011-12-30 00:00 "
                        "to 2011-12-31 00:00 (-10 to +14)")


@pytest.mark.parametrize("name", ["America/New_York", "Australia/Sydney", "Australia/Lord_Howe", "Europe/Dublin",
                                  "America/Santiago", "Pacific/Apia", "Africa/Casablanca", "UTC"])
@pytest.mark.parametrize("dst", [None, "earlier", "later"])
def test_the_column_reads_every_time_as_the_value_by_value_reading(name, dst):
    tz = zone(name)
    rng = random.Random(name)
    texts = [f"{rng.choice([1918, 1942, 2011, 2024, 2037, 2100])}-{rng.choice([3, 4, 9, 10, 11, 12]):02d}-"
             f"{rng.randint(1, 30):02d} {rng.randint(0, 23):02d}:{rng.choice([0, 30, 59]):02d}" for _ in range(3000)]
    texts += [text[:10] for text in texts[:300]] + ["2024-03-10T02:30Z", "0001-01-01 00:00", "9999-12-31 23:59"]
    assert parse_times(texts, tz, (), dst) == [parse_time(text, tz, (), dst) for text in texts]


def test_dst_values_are_checked():
    assert check_zone("America/New_York", "later") is NEW_YORK
    with pytest.raises(ValueError, match="--dst must be earlier or later"):
        check_zone("America/New_York", "first")
    with pytest.raises(ValueError, match="unknown time zone"):
        check_zone("America/Gotham")


# --- RFC 3339's lower case, and GA4's microseconds

def test_rfc_3339_lower_case_t_and_z_are_read():
    for text in ("2024-03-01t10:00:00z", "2024-03-01T10:00:00z", "2024-03-01t10:00:00.250z"):
        assert parse_time(text) == pytest.approx(ts(2024, 3, 1, 10) + (0.25 if ".250" in text else 0))
        assert parse_times([text, "2024-03-01T10:00:00Z"]) == [parse_time(text), ts(2024, 3, 1, 10)]
    assert parse_time("2024-03-01t10:00:00z", NEW_YORK) == ts(2024, 3, 1, 10)  # a z is UTC, not the zone
    assert parse_time("2024-03-01z") is None


def test_sixteen_digits_are_unix_microseconds_read_exactly():
    # GA4's event_timestamp: 2024-03-01T10:00:00.123456Z
    assert parse_time("1709287200123456") == 1709287200123456 / 1_000_000 == 1709287200.123456
    assert parse_times(["1709287200123456"]) == [1709287200.123456]
    assert iso(parse_time("1709287200123456")) == "2024-03-01T10:00:00.123Z"
    # past 2**53 a float of the digits is no longer exact: the division is still rounded only once
    assert parse_time("9007199254740993") == 9007199254740993 / 1_000_000
    assert parse_time("1709287200123456", NEW_YORK, ("excel",)) == 1709287200.123456


@pytest.mark.parametrize("text", ["17092872001234", "170928720012345", "17092872001234567", "0709287200123456",
                                  "1709287200123456.5"])
def test_other_long_numbers_are_still_refused(text):
    assert parse_time(text) is None and parse_times([text]) == [None]
    code, message = time_problem(text)
    assert code == "invalid_time"
    assert "10 digits (seconds), 13 (milliseconds) or 16 (microseconds)" in message


def test_iso_writes_what_isoformat_with_milliseconds_wrote():
    rng = random.Random(5)
    values = [rng.uniform(-2e9, 2.5e11) for _ in range(20_000)] + [n / 1000 + 0.0005 for n in range(-3000, 3000)] \
        + [1709287200.9995, 1709287200.999999, 0.0, -0.0005, 253402300799.999]
    for ts in values:
        assert iso(ts) == datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
