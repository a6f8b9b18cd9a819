"""The projections playerlog runs: the one list `serve`, `worker`, the
`projections` commands and the read API all take theirs from."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from projections.games import GamesProjection
from projections.ledger import LedgerProjection
from projections.players import PlayersProjection
from projections.protocol import Projection
from projections.rates import NO_RATES, Rates

__all__ = ["projections_for", "standard_projections"]


def standard_projections(rates: Rates = NO_RATES) -> list[Projection]:
    """Fresh instances (a projection may cache prepared statements per connection).

    `rates` converts money to EUR for the players and ledger models; without a
    rates file only EUR amounts and events carrying `amount_eur` convert.
    """
    return [PlayersProjection(rates=rates), GamesProjection(), LedgerProjection(rates=rates)]


def projections_for(rates_file: str | Path | None) -> Callable[[], list[Projection]]:
    """A factory of the standard projections with the EUR rates file (if any) loaded
    once, now: a bad file is refused at start-up with its line and reason."""
    rates = NO_RATES if not rates_file else Rates.load(rates_file)
    return lambda: standard_projections(rates)
