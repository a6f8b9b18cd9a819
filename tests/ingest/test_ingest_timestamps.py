"""Timestamps: a zone is required, UTC is stored."""

from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.timestamps import AwareDatetime, TimestampOutOfRangeError, require_utc, to_utc


class Stamped(msgspec.Struct):
    at: AwareDatetime


DECODER = msgspec.json.Decoder(Stamped)


def decode(text: str) -> datetime:
    return DECODER.decode(f'{{"at": "{text}"}}'.encode()).at


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2026-05-18T14:38:00.000Z", datetime(2026, 5, 18, 14, 38, tzinfo=UTC)),
        ("2026-05-18T14:38:00z", datetime(2026, 5, 18, 14, 38, tzinfo=UTC)),
        ("2026-05-18 14:38:00Z", datetime(2026, 5, 18, 14, 38, tzinfo=UTC)),
        ("2026-05-18T16:38:00+02:00", datetime(2026, 5, 18, 14, 38, tzinfo=UTC)),
        ("2026-05-18T09:08:00-05:30", datetime(2026, 5, 18, 14, 38, tzinfo=UTC)),
        ("2026-05-18T14:38:00.123456+00:00", datetime(2026, 5, 18, 14, 38, 0, 123456, tzinfo=UTC)),
    ],
)
def test_zoned_timestamps_are_accepted_and_converted_to_utc(text: str, utc: datetime) -> None:
    converted = to_utc(decode(text))

    assert converted == utc
    assert converted.tzinfo is UTC


@pytest.mark.parametrize("text", ["2026-05-18T14:38:00", "2026-05-18T14:38:00.000"])
def test_naive_timestamps_are_rejected(text: str) -> None:
    with pytest.raises(msgspec.ValidationError, match="timezone component"):
        decode(text)


@pytest.mark.parametrize("text", ["2026-05-18", "18/05/2026 14:38", "2026-05-18T14:38Z", "now"])
def test_timestamps_that_are_not_rfc_3339_are_rejected(text: str) -> None:
    with pytest.raises(msgspec.ValidationError, match="Invalid RFC3339"):
        decode(text)


def test_utc_timestamps_pass_through_unchanged() -> None:
    value = datetime(2026, 5, 18, tzinfo=UTC)

    assert to_utc(value) is value


@pytest.mark.parametrize(
    "value",
    [
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
        datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-1))),
    ],
)
def test_a_timestamp_with_no_utc_equivalent_raises_out_of_range(value: datetime) -> None:
    with pytest.raises(TimestampOutOfRangeError):
        to_utc(value)


def test_require_utc_refuses_a_naive_server_timestamp() -> None:
    with pytest.raises(ValueError, match="must be an aware datetime"):
        require_utc(datetime(2026, 5, 18))


def test_require_utc_converts_an_aware_server_timestamp() -> None:
    value = datetime(2026, 5, 18, 2, tzinfo=timezone(timedelta(hours=2)))

    assert require_utc(value) == datetime(2026, 5, 18, tzinfo=UTC)


@given(
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1)),
    st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59),
)
def test_any_offset_is_converted_to_the_same_instant_in_utc(local: datetime, minutes: int) -> None:
    zoned = local.replace(tzinfo=timezone(timedelta(minutes=minutes)))

    decoded = decode(zoned.isoformat())

    assert to_utc(decoded) == zoned
    assert to_utc(decoded).tzinfo is UTC
