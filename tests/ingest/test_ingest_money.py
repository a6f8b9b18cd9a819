"""Money: exact Decimal from JSON numbers only, finite, positive, bounded."""

from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest import MAX_AMOUNT, MAX_DECIMAL_PLACES
from ingest.money import PositiveAmount, dec_hook, float_hook


class Money(msgspec.Struct):
    amount: PositiveAmount
    optional: PositiveAmount | None = None


DECODER = msgspec.json.Decoder(Money, dec_hook=dec_hook, float_hook=float_hook)


def amount_of(text: str) -> Decimal:
    return DECODER.decode(f'{{"amount": {text}}}'.encode()).amount


def error_of(text: str) -> str:
    with pytest.raises(msgspec.ValidationError) as caught:
        DECODER.decode(f'{{"amount": {text}}}'.encode())
    return str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0.1", "0.1"), ("12.50", "12.50"), ("100", "100"), ("1e2", "1E+2"), ("7.000", "7.000")],
)
def test_amount_is_decoded_exactly_and_keeps_its_scale(text: str, expected: str) -> None:
    amount = amount_of(text)

    assert isinstance(amount, PositiveAmount)
    assert str(amount) == expected


def test_point_one_is_exactly_one_tenth() -> None:
    assert amount_of("0.1") * 3 == Decimal("0.3")


@pytest.mark.parametrize(
    ("text", "got"),
    [
        ('"12.50"', "str"),
        ('"NaN"', "str"),
        ('"Infinity"', "str"),
        ('"-Infinity"', "str"),
        ("true", "bool"),
        ("null", "null"),
        ("[1]", "array"),
        ('{"v": 1}', "object"),
    ],
)
def test_amount_that_is_not_a_json_number_is_rejected(text: str, got: str) -> None:
    assert error_of(text) == f"Expected `number`, got `{got}` - at `$.amount`"


@pytest.mark.parametrize("text", ["0", "0.00", "-0.0", "-1", "-0.01"])
def test_amount_of_zero_or_less_is_rejected(text: str) -> None:
    assert error_of(text) == "Expected `number` > 0 - at `$.amount`"


def test_amount_of_10_to_the_18_or_more_is_rejected() -> None:
    assert error_of("1e18") == "Expected `number` < 1000000000000000000 - at `$.amount`"
    assert error_of("1e999999999") == "Expected `number` < 1000000000000000000 - at `$.amount`"


def test_amount_with_more_than_18_decimal_places_is_rejected() -> None:
    assert amount_of("0." + "0" * 17 + "1") == Decimal("1E-18")
    assert error_of("0." + "0" * 18 + "1") == (
        "Expected `number` with at most 18 decimal places - at `$.amount`"
    )


def test_json_nan_literal_is_not_json() -> None:
    with pytest.raises(msgspec.DecodeError):
        DECODER.decode(b'{"amount": NaN}')


def test_hook_rejects_a_non_finite_decimal_should_one_ever_reach_it() -> None:
    with pytest.raises(ValueError, match="finite"):
        dec_hook(PositiveAmount, Decimal("NaN"))


def test_hook_refuses_types_it_does_not_know() -> None:
    with pytest.raises(NotImplementedError):
        dec_hook(complex, 1)


def test_optional_amount_may_be_null_or_absent_but_not_zero() -> None:
    assert DECODER.decode(b'{"amount": 1, "optional": null}').optional is None
    assert DECODER.decode(b'{"amount": 1}').optional is None
    with pytest.raises(msgspec.ValidationError, match="> 0"):
        DECODER.decode(b'{"amount": 1, "optional": 0}')


def test_float_hook_builds_the_decimal_from_the_literal_text() -> None:
    assert float_hook("12.50") == Decimal("12.50")


@given(
    st.decimals(
        min_value=Decimal("1E-18"),
        max_value=MAX_AMOUNT - 1,
        places=None,
        allow_nan=False,
        allow_infinity=False,
    ).filter(lambda d: -d.as_tuple().exponent <= MAX_DECIMAL_PLACES)  # type: ignore[operator]
)
def test_any_valid_amount_round_trips_exactly_from_its_text(value: Decimal) -> None:
    text = format(value, "f")

    amount: Any = amount_of(text)

    assert amount == value
    assert str(amount) == str(Decimal(text))
