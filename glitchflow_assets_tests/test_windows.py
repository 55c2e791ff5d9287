from datetime import UTC, datetime

import pytest

from glitchflow_assets.core.runs.windows import Cadence, gps_to_utc, utc_to_gps, validate_partition_key, window_for_key, windows_overlapping


def test_gps_utc_includes_leap_seconds():
    # GW150914: GPS 1126259462.4 = 2015-09-14 09:50:45.4 UTC (17 leap seconds then).
    assert gps_to_utc(1126259462.4) == datetime(2015, 9, 14, 9, 50, 45, 400000, tzinfo=UTC)
    assert utc_to_gps(datetime(2015, 9, 14, 9, 50, 45, 400000, tzinfo=UTC)) == pytest.approx(1126259462.4)
    # Across the 2016-12-31 leap second a UTC hour lasts 3601 GPS seconds.
    hour = window_for_key("2016-12-31T23:00", Cadence.parse("1h"))
    assert hour.duration == 3601


@pytest.mark.parametrize(
    ("text", "seconds", "cron"),
    [
        ("5min", 300, "*/5 * * * *"),
        ("1min", 60, "* * * * *"),
        ("1h", 3600, "0 * * * *"),
        ("6h", 21600, "0 */6 * * *"),
        ("1d", 86400, "0 0 * * *"),
    ],
)
def test_cadences(text, seconds, cron):
    c = Cadence.parse(text)
    assert (c.seconds, c.cron) == (seconds, cron)


@pytest.mark.parametrize("text", ["7min", "5", "0min", "2d", "5 min; rm -rf", "-1h"])
def test_bad_cadence(text):
    with pytest.raises(ValueError, match="cadence"):
        Cadence.parse(text)


def test_window_keys_round_trip_to_gps():
    c = Cadence.parse("5min")
    w = window_for_key("2024-05-17T16:55", c)
    assert (w.gps_start, w.gps_end) == (1400000118, 1400000418)
    assert [x.key for x in windows_overlapping(1400000118, 1400000419, c)] == ["2024-05-17T16:55", "2024-05-17T17:00"]
    assert windows_overlapping(1400000118, 1400000418, c) == [w]


@pytest.mark.parametrize(
    "key", ["../../etc/passwd", "2024-05-17T16:55/../x", "2024-05-17 16:55", "2024-05-17T16:55\n", "", "2024-05-17T16:55:00"]
)
def test_hostile_partition_keys_are_rejected(key):
    with pytest.raises(ValueError, match="invalid window partition key"):
        validate_partition_key(key)


def test_misaligned_key_is_rejected():
    with pytest.raises(ValueError, match="not aligned"):
        window_for_key("2024-05-17T16:57", Cadence.parse("5min"))
