"""Money on the wire: a JSON number, decoded exactly into ``Decimal``.

msgspec decodes JSON numbers into ``Decimal`` exactly from their text (``12.50`` keeps its
scale, ``0.1`` stays 0.1), but its ``Decimal`` type also accepts strings, and ``"NaN"`` or
``"Infinity"`` would then decode. The unified spec says ``amount`` is a *number*, so money
fields use ``PositiveAmount``, a custom type decoded by ``dec_hook``:

* only JSON numbers are accepted (``"12.50"`` as a string is a type error, like ``true``);
* the decoder's ``float_hook`` turns each float literal into a ``Decimal`` from its text, so
  nothing passes through binary floating point;
* the value must be finite (always true of a JSON number; checked anyway), greater than 0,
  below ``MAX_AMOUNT`` and have at most ``MAX_DECIMAL_PLACES`` places. The last two are not
  in the spec: they keep values such as ``1e999999999`` out of the append-only log, where
  they would break every projection that adds them up, forever.

The hook raises with messages in msgspec's own style (``Expected `number`, got `str```),
so ``ingest.problems`` maps them like any other msgspec error.
"""

from decimal import Decimal
from typing import Any, Final

__all__ = [
    "MAX_AMOUNT",
    "MAX_DECIMAL_PLACES",
    "PositiveAmount",
    "dec_hook",
    "float_hook",
]

#: Amounts must be below this (exclusive). Generous for any fiat or crypto unit.
MAX_AMOUNT: Final = Decimal(10) ** 18
#: At most this many digits after the point (18: the smallest unit of most tokens).
MAX_DECIMAL_PLACES: Final = 18

_JSON_TYPE_NAMES: Final[dict[type, str]] = {
    str: "str",
    bool: "bool",
    type(None): "null",
    list: "array",
    dict: "object",
}


class PositiveAmount(Decimal):
    """A money amount: an exact, finite, positive JSON number."""

    __slots__ = ()


def float_hook(text: str) -> Decimal:
    """Decode a JSON float literal exactly (``12.50`` -> ``Decimal("12.50")``)."""
    return Decimal(text)


def dec_hook(target: type, value: Any) -> Any:
    """msgspec ``dec_hook``: build a ``PositiveAmount`` from an untyped JSON value."""
    if target is PositiveAmount:
        return _positive_amount(value)
    raise NotImplementedError(f"no decoder for {target!r}")


def _positive_amount(value: Any) -> PositiveAmount:
    # bool is an int subclass; JSON true/false is not a number.
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        got = _JSON_TYPE_NAMES.get(type(value), type(value).__name__)
        raise TypeError(f"Expected `number`, got `{got}`")
    amount = PositiveAmount(value)
    if not amount.is_finite():
        raise ValueError("Expected a finite `number`")
    if not amount > 0:
        raise ValueError("Expected `number` > 0")
    if not amount < MAX_AMOUNT:
        raise ValueError(f"Expected `number` < {MAX_AMOUNT}")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_DECIMAL_PLACES:
        raise ValueError(f"Expected `number` with at most {MAX_DECIMAL_PLACES} decimal places")
    return amount
