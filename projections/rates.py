"""EUR figures for movements: given, already EUR, or from a dated rates file.

`Rates.to_eur(movement)` gives, in this order:

1. the movement's own `amount_eur` when the event carries it (exactly as sent);
2. the amount itself when the currency is EUR;
3. the amount divided by the rate of the event's date from the rates file,
   rounded half-to-even to the cent (`0.01`);
4. None when there is no such rate: the movement stays *unconverted* (counted
   in its own currency and reported as unconverted, never guessed).

The rates file is CSV with a header, one rate per line::

    date,currency,rate
    2026-05-15,USD,1.0823
    2026-05-15,GBP,0.85350

`rate` is how many units of `currency` one euro buys on `date`: the form of the
ECB's euro reference rates, so their download converts without arithmetic.
`date` is `YYYY-MM-DD`, `currency` a code as in the events (upper-cased),
`rate` a positive decimal. "The rate of the event's date" is the rate dated the
event's UTC date; a date without one (weekends and holidays: the ECB publishes
on working days only) takes the latest earlier rate of that currency, at most
`max_age_days` (7 by default) before; past that, or before a currency's first
rate, the movement is unconverted.

Rates are part of a build's rules: live and rebuilt read models agree only when
built with the same file. Changing it (even adding new dates) therefore needs a
rebuild of the projections that convert (`ledger`, `players`); `fingerprint`
identifies a file's rules, so a deployment can tell when that is due.
"""

from __future__ import annotations

import csv
import hashlib
import io
from bisect import bisect_right
from collections.abc import Iterable
from datetime import UTC, date, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from pathlib import Path
from typing import Final

from projections.movements import Movement

__all__ = ["CENT", "DEFAULT_MAX_AGE_DAYS", "NO_RATES", "Rates", "RatesFileError", "eur_text"]

CENT: Final = Decimal("0.01")
DEFAULT_MAX_AGE_DAYS: Final = 7
HEADER: Final = ("date", "currency", "rate")

# Enough digits for any amount the movement table accepts (below 1e18, 18
# places) divided by any rate: the quotient is rounded once, to the cent, and
# not before.
_DIVISION: Final = Context(prec=80)


class RatesFileError(ValueError):
    """A rates file that cannot be used; the message names the line and the reason."""


def eur_text(value: Decimal | None) -> str | None:
    """A EUR figure as stored and shown: its exact decimal text."""
    return None if value is None else str(value)


class Rates:
    """Dated EUR rates (units of a currency per euro), and the EUR figure of a movement."""

    __slots__ = ("_by_currency", "_cache", "_days", "fingerprint", "max_age_days", "source")

    def __init__(
        self,
        rows: Iterable[tuple[date, str, Decimal]] = (),
        *,
        max_age_days: int = DEFAULT_MAX_AGE_DAYS,
        source: str = "",
    ) -> None:
        if max_age_days < 0:
            raise ValueError("max_age_days must be >= 0")
        table: dict[str, dict[date, Decimal]] = {}
        for day, currency, rate in rows:
            code = currency.upper()
            if code == "EUR":
                raise RatesFileError(f"{source}: EUR needs no rate (an EUR amount is its own)")
            if not rate.is_finite() or rate <= 0:
                raise RatesFileError(f"{source}: the rate of {code} on {day} must be > 0")
            known = table.setdefault(code, {})
            if day in known and known[day] != rate:
                raise RatesFileError(
                    f"{source}: {code} on {day} has two rates, {known[day]} and {rate}"
                )
            known[day] = rate
        self.source = source
        self.max_age_days = max_age_days
        self._days = {code: sorted(rates) for code, rates in table.items()}
        self._by_currency = table
        self._cache: dict[tuple[str, date], Decimal | None] = {}
        lines = [
            f"{day.isoformat()},{code},{table[code][day].normalize()}"
            for code in sorted(table)
            for day in self._days[code]
        ]
        rules = "\n".join([f"max_age_days={max_age_days}", *lines])
        self.fingerprint = hashlib.sha256(rules.encode()).hexdigest()[:16]
        """Identifies the conversion rules (the rates and `max_age_days`), not the file's bytes."""

    @classmethod
    def parse(
        cls, text: str, *, source: str = "<rates>", max_age_days: int = DEFAULT_MAX_AGE_DAYS
    ) -> Rates:
        """Rates from CSV text (`date,currency,rate` with that header)."""
        reader = csv.reader(io.StringIO(text))
        rows: list[tuple[date, str, Decimal]] = []
        header_seen = False
        for line_number, fields in enumerate(reader, start=1):
            if not fields or all(not f.strip() for f in fields):
                continue
            cells = tuple(f.strip() for f in fields)
            if not header_seen:
                if tuple(c.lower() for c in cells) != HEADER:
                    raise RatesFileError(
                        f"{source}:{line_number}: the header must be date,currency,rate"
                    )
                header_seen = True
                continue
            rows.append(_row(cells, f"{source}:{line_number}"))
        if not header_seen:
            raise RatesFileError(f"{source}: empty; the header must be date,currency,rate")
        return cls(rows, max_age_days=max_age_days, source=source)

    @classmethod
    def load(cls, path: str | Path, *, max_age_days: int = DEFAULT_MAX_AGE_DAYS) -> Rates:
        """Rates from a CSV file (see the module's docstring for the format)."""
        return cls.parse(
            Path(path).read_text(encoding="utf-8"), source=str(path), max_age_days=max_age_days
        )

    def rate(self, currency: str, day: date) -> Decimal | None:
        """Units of `currency` per euro on `day`, or None (see the module's docstring)."""
        key = (currency, day)
        try:
            return self._cache[key]
        except KeyError:
            pass
        found: Decimal | None = None
        days = self._days.get(currency)
        if days:
            index = bisect_right(days, day) - 1
            if index >= 0 and day - days[index] <= timedelta(days=self.max_age_days):
                found = self._by_currency[currency][days[index]]
        self._cache[key] = found
        return found

    def to_eur(self, movement: Movement) -> Decimal | None:
        """The movement's EUR figure, or None when it has no rate (never guessed)."""
        if movement.amount_eur is not None:
            return movement.amount_eur
        if movement.currency == "EUR":
            return movement.amount
        moment = movement.occurred_at
        day = (moment if moment.tzinfo is UTC else moment.astimezone(UTC)).date()
        rate = self.rate(movement.currency, day)
        if rate is None:
            return None
        # Its own context: the one rounding here is meant, whatever the caller's
        # context traps (`EXACT` traps Inexact so that sums are never rounded).
        quotient = _DIVISION.divide(movement.amount, rate)
        return quotient.quantize(CENT, rounding=ROUND_HALF_EVEN, context=_DIVISION)

    def __repr__(self) -> str:
        return f"Rates(source={self.source!r}, fingerprint={self.fingerprint!r})"


def _row(cells: tuple[str, ...], where: str) -> tuple[date, str, Decimal]:
    if len(cells) != len(HEADER):
        raise RatesFileError(f"{where}: expected 3 fields (date,currency,rate), got {len(cells)}")
    day_text, currency, rate_text = cells
    try:
        day = date.fromisoformat(day_text)
    except ValueError:
        raise RatesFileError(f"{where}: date {day_text!r} is not YYYY-MM-DD") from None
    if not currency or not currency.isascii() or not currency.isalnum():
        raise RatesFileError(f"{where}: currency {currency!r} is not a currency code")
    try:
        rate = Decimal(rate_text)
    except InvalidOperation:
        raise RatesFileError(f"{where}: rate {rate_text!r} is not a decimal number") from None
    if not rate.is_finite() or rate <= 0:
        raise RatesFileError(f"{where}: rate {rate_text!r} must be a number > 0")
    return day, currency.upper(), rate


NO_RATES: Final = Rates(source="<none>")
"""No rates file: only `amount_eur` and EUR amounts convert."""
