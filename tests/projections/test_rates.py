"""EUR figures: given, already EUR, from the dated rates file, or honestly missing."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from projections.movements import Movement
from projections.rates import NO_RATES, Rates, RatesFileError

RATES_CSV = """date,currency,rate
2026-05-15,USD,1.0823
2026-05-15,GBP,0.85350
2026-05-18,USD,1.0900
"""


def movement(
    amount: str,
    currency: str,
    *,
    when: datetime = datetime(2026, 5, 18, 14, 38, tzinfo=UTC),
    amount_eur: str | None = None,
) -> Movement:
    return Movement(
        kind="deposit",
        amount=Decimal(amount),
        currency=currency,
        amount_eur=None if amount_eur is None else Decimal(amount_eur),
        wallet="cash",
        user_id="ply_1",
        game_id=None,
        round_id=None,
        occurred_at=when,
    )


RATES = Rates.parse(RATES_CSV)


def test_amount_eur_when_given_is_used_exactly_as_sent() -> None:
    assert RATES.to_eur(movement("100", "SEK", amount_eur="8.7301")) == Decimal("8.7301")


def test_an_eur_amount_is_its_own_eur_figure() -> None:
    assert str(NO_RATES.to_eur(movement("12.50", "EUR"))) == "12.50"


def test_other_currencies_use_the_rate_of_the_event_date_rounded_to_the_cent() -> None:
    # 100 / 1.0900 = 91.7431…; the 15th's rate (1.0823) is not the 18th's
    assert RATES.to_eur(movement("100", "USD")) == Decimal("91.74")


def test_rounding_is_half_to_even() -> None:
    rates = Rates.parse("date,currency,rate\n2026-05-18,XTS,2\n")
    assert rates.to_eur(movement("0.05", "XTS")) == Decimal("0.02")  # 0.025 → 0.02
    assert rates.to_eur(movement("0.07", "XTS")) == Decimal("0.04")  # 0.035 → 0.04


def test_a_date_without_a_rate_takes_the_latest_earlier_one_within_max_age() -> None:
    sunday = datetime(2026, 5, 17, 23, 59, tzinfo=UTC)
    assert RATES.to_eur(movement("85.35", "GBP", when=sunday)) == Decimal("100.00")
    assert RATES.rate("GBP", date(2026, 5, 22)) == Decimal("0.85350")
    assert RATES.rate("GBP", date(2026, 5, 23)) is None  # 8 days after the last rate


def test_no_rate_leaves_the_movement_unconverted() -> None:
    before_first = datetime(2026, 5, 14, tzinfo=UTC)
    assert RATES.to_eur(movement("100", "USD", when=before_first)) is None
    assert RATES.to_eur(movement("100", "JPY")) is None
    assert NO_RATES.to_eur(movement("100", "USD")) is None


def test_the_event_date_is_taken_in_utc() -> None:
    # 01:00 on the 18th in UTC+03:00 is still the 17th in UTC: the 15th's rate applies.
    from datetime import timedelta, timezone  # noqa: PLC0415

    moment = datetime(2026, 5, 18, 1, 0, tzinfo=timezone(timedelta(hours=3)))
    assert RATES.to_eur(movement("108.23", "USD", when=moment)) == Decimal("100.00")


def test_load_reads_a_file_and_upper_cases_codes(tmp_path: Path) -> None:
    path = tmp_path / "eur-rates.csv"
    path.write_text("date,currency,rate\n\n2026-05-18,usd,1.09\n", encoding="utf-8")
    rates = Rates.load(path)
    assert rates.rate("USD", date(2026, 5, 18)) == Decimal("1.09")
    assert rates.source == str(path)


def test_the_fingerprint_names_the_rules_not_the_bytes() -> None:
    reordered = Rates.parse(
        "date,currency,rate\n2026-05-18,USD,1.09\n2026-05-15,GBP,0.8535\n2026-05-15,USD,1.0823\n"
    )
    assert reordered.fingerprint == RATES.fingerprint
    changed = Rates.parse(RATES_CSV + "2026-05-19,USD,1.1\n")
    assert changed.fingerprint != RATES.fingerprint
    assert Rates.parse(RATES_CSV, max_age_days=0).fingerprint != RATES.fingerprint


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("day,code,value\n", "the header must be date,currency,rate"),
        ("date,currency,rate\n2026-05-18,USD\n", ":2: expected 3 fields"),
        ("date,currency,rate\n18/05/2026,USD,1.09\n", ":2: date '18/05/2026' is not YYYY-MM-DD"),
        ("date,currency,rate\n2026-05-18,U$D,1.09\n", ":2: currency 'U$D'"),
        ("date,currency,rate\n2026-05-18,USD,abc\n", ":2: rate 'abc' is not a decimal number"),
        ("date,currency,rate\n2026-05-18,USD,0\n", ":2: rate '0' must be a number > 0"),
        ("date,currency,rate\n2026-05-18,USD,NaN\n", ":2: rate 'NaN' must be a number > 0"),
        ("date,currency,rate\n2026-05-18,EUR,1\n", "EUR needs no rate"),
        (
            "date,currency,rate\n2026-05-18,USD,1.09\n2026-05-18,USD,1.1\n",
            "USD on 2026-05-18 has two rates",
        ),
    ],
)
def test_a_bad_rates_file_is_refused_naming_line_and_reason(text: str, message: str) -> None:
    with pytest.raises(RatesFileError) as raised:
        Rates.parse(text, source="rates.csv")
    assert message in str(raised.value)
    assert str(raised.value).startswith("rates.csv")


def test_converting_inside_the_exact_money_context_rounds_only_the_eur_figure() -> None:
    from decimal import localcontext  # noqa: PLC0415

    from projections.movements import EXACT  # noqa: PLC0415

    with localcontext(EXACT):  # traps Inexact: a stray rounding would raise here
        assert RATES.to_eur(movement("1", "USD")) == Decimal("0.92")
