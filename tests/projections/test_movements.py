"""The movement table: which event moves which money, read exactly from the payload."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from eventstore import Envelope
from projections.movements import (
    MONEY_EVENTS,
    MOVEMENT_KINDS,
    MOVEMENT_TABLE,
    Movement,
    UnreadableMoney,
    decoding_once,
    movements_of,
    read_movements,
)
from projections.protocol import CannotApply
from tests.projections.helpers import (
    _envelope,
    at,
    deposit_item,
    gameround_item,
    identify,
    iso,
    money_track,
    player_item,
    recorded,
    track,
    unified,
    withdraw_item,
)


def moved(envelope: Envelope) -> list[Movement]:
    (event,) = recorded([envelope])
    return movements_of(event)


def read(envelope: Envelope) -> list[Movement] | UnreadableMoney:
    (event,) = recorded([envelope])
    return read_movements(event)


def only(envelope: Envelope) -> Movement:
    (movement,) = moved(envelope)
    return movement


TRACK_KINDS = [
    ("deposit_success", "deposit"),
    ("withdrawal_completed", "withdrawal"),
    ("bet_placed", "bet"),
    ("bet_won", "win"),
    ("cashback_credited", "cashback"),
    ("refund_processed", "refund"),
    ("manual_adjustment_credit", "adjustment_credit"),
    ("manual_adjustment_debit", "adjustment_debit"),
]


@pytest.mark.parametrize(("event_name", "kind"), TRACK_KINDS)
def test_each_track_money_event_is_its_movement(event_name: str, kind: str) -> None:
    movement = only(
        money_track("ply_1", event_name, Decimal("12.50"), when=at(0), event_id=f"t-{event_name}")
    )
    assert movement == Movement(
        kind=kind,
        amount=Decimal("12.50"),
        currency="EUR",
        amount_eur=None,
        wallet="cash",
        user_id="ply_1",
        game_id=None,
        round_id=None,
        occurred_at=at(0),
    )
    assert str(movement.amount) == "12.50"  # the scale as sent


def test_every_kind_has_a_row_in_the_table() -> None:
    kinds = {rule.kind for rule in MOVEMENT_TABLE.values()} | {
        rule.win_kind for rule in MOVEMENT_TABLE.values() if rule.win_kind
    }
    assert kinds == set(MOVEMENT_KINDS)
    assert set(MONEY_EVENTS) == set(MOVEMENT_TABLE)


def test_the_spec_sample_bet_placed_keeps_wallet_and_game() -> None:
    movement = only(track("ply_776192", "bet_placed", when=at(0), event_id="t-1"))
    assert (movement.kind, movement.amount, movement.wallet, movement.game_id) == (
        "bet",
        Decimal(2),
        "cash",
        "gates_of_olympus",
    )


@pytest.mark.parametrize(
    "properties",
    [{"wallet_type": "bonus"}, {"wallet_type": "BONUS"}, {"is_bonus": True}],
)
def test_track_bets_from_the_bonus_wallet_are_bonus_money(properties: dict[str, Any]) -> None:
    movement = only(money_track("ply_1", "bet_placed", 1, when=at(0), event_id="t-1", **properties))
    assert movement.wallet == "bonus"


def test_track_round_id_falls_back_to_bet_id() -> None:
    with_round = money_track("p", "bet_won", 3, when=at(0), event_id="a", round_id="r1", bet_id="b")
    with_bet = money_track("p", "bet_placed", 1, when=at(0), event_id="b", bet_id="b7")
    assert (only(with_round).round_id, only(with_bet).round_id) == ("r1", "b7")


@pytest.mark.parametrize(
    "event_name",
    [
        "deposit_started",
        "deposit_pending",
        "deposit_failed",
        "withdrawal_requested",
        "withdrawal_processed",
        "bet_lost",
        "bet_settled",
        "wallet_balance_updated",
        "bonus_claimed",
        "page_viewed",
    ],
)
def test_steps_outcomes_and_balances_move_no_money(event_name: str) -> None:
    assert moved(money_track("ply_1", event_name, 5, when=at(0), event_id="t-1")) == []


def test_profile_and_catalogue_events_move_no_money() -> None:
    assert moved(identify("ply_1", when=at(0), traits={"amount": 5})) == []
    assert moved(player_item("ply_1", when=at(0), unique_id="u-1", currency="EUR")) == []


def test_unified_gamerounds_are_bets_and_wins_paired_by_round() -> None:
    bet = only(
        gameround_item(
            "StQ-1", when=at(0), unique_id="9cd823d3fe", amount=0.5, round_id="f7ltidMBAwexDojlJBY"
        )
    )
    win = only(
        gameround_item(
            "StQ-1",
            when=at(1),
            unique_id="9cd823d3ff",
            amount=1.2,
            is_win=True,
            round_id="f7ltidMBAwexDojlJBY",
        )
    )
    assert (bet.kind, bet.amount, bet.game_id) == ("bet", Decimal("0.5"), "GD8")
    assert (win.kind, win.amount) == ("win", Decimal("1.2"))
    assert bet.round_id == win.round_id == "f7ltidMBAwexDojlJBY"


def test_unified_bonus_rounds_are_bonus_money() -> None:
    bonus = only(gameround_item("p", when=at(0), unique_id="u", is_bonus=True))
    assert bonus.wallet == "bonus"


def test_unified_deposit_keeps_its_eur_value_and_withdraw_is_a_withdrawal() -> None:
    deposit = only(
        deposit_item(
            "p",
            when=at(0),
            unique_id="d",
            amount=Decimal(100),
            currency="sek",
            amount_eur=Decimal("8.73"),
        )
    )
    withdrawal = only(withdraw_item("p", when=at(0), unique_id="w", amount=Decimal("25.00")))
    assert (deposit.kind, deposit.currency, deposit.amount_eur) == (
        "deposit",
        "SEK",
        Decimal("8.73"),
    )
    assert (withdrawal.kind, withdrawal.amount, withdrawal.wallet) == (
        "withdrawal",
        Decimal("25.00"),
        "cash",
    )


def test_a_unified_game_item_moves_no_money() -> None:
    game = unified(
        "game", {"unique_id": "g", "timestamp": "2026-05-18T14:38:00Z", "game_id": "GD8"}
    )
    assert moved(game) == []


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        ({"currency": "EUR"}, "properties.bet_amount is missing"),
        ({"bet_amount": None, "currency": "EUR"}, "properties.bet_amount is missing"),
        (
            {"bet_amount": "two", "currency": "EUR"},
            "properties.bet_amount must be a number (or a string holding a plain decimal such "
            'as "12.50"), got "two"',
        ),
        ({"bet_amount": "1e3", "currency": "EUR"}, "properties.bet_amount must be a number"),
        ({"bet_amount": True, "currency": "EUR"}, "properties.bet_amount must be a number"),
        ({"bet_amount": -1, "currency": "EUR"}, "properties.bet_amount must be >= 0"),
        ({"bet_amount": 1e30, "currency": "EUR"}, "properties.bet_amount must be below"),
        ({"bet_amount": 2}, "properties.currency is missing"),
        ({"bet_amount": 2, "currency": ""}, "properties.currency must be a currency code"),
        ({"bet_amount": 2, "currency": 978}, "properties.currency must be a currency code"),
        ({"bet_amount": 2, "currency": "EUR", "wallet_type": "x"}, "properties.wallet_type"),
        ({"bet_amount": 2, "currency": "EUR", "amount_eur": "€2"}, "properties.amount_eur"),
        ({"bet_amount": 2, "currency": "EUR", "game_id": ["g"]}, "properties.game_id"),
    ],
)
def test_a_bad_track_amount_or_currency_is_unreadable_money_not_a_movement(
    properties: dict[str, Any], message: str
) -> None:
    envelope = track("ply_1", "bet_placed", when=at(0), event_id="t-bad", properties=properties)
    unreadable = read(envelope)
    assert isinstance(unreadable, UnreadableMoney)
    assert unreadable.reason.startswith("track bet_placed event 't-bad': ")
    assert message in unreadable.reason
    assert moved(envelope) == []  # counted nowhere by the models that only sum money


def test_a_track_amount_sent_as_decimal_text_is_read_exactly() -> None:
    envelope = track(
        "ply_1",
        "bet_placed",
        when=at(0),
        event_id="t-text",
        properties={"bet_amount": "2.10", "currency": "EUR"},
    )
    (movement,) = moved(envelope)
    assert movement.amount == Decimal("2.10")
    assert str(movement.amount) == "2.10"


def test_a_track_money_event_without_properties_is_unreadable_money() -> None:
    envelope = _envelope(
        source="track",
        type_="deposit_success",
        event_id="t-bare",
        subject="ply_1",
        when=at(0),
        payload=b'{"user_id": "ply_1", "event_name": "deposit_success"}',
        tenant="casino-a",
        environment="live",
        received=None,
    )
    assert read(envelope) == UnreadableMoney(
        reason="track deposit_success event 't-bare': properties.amount is missing"
    )
    assert moved(envelope) == []


def test_track_properties_that_are_not_an_object_are_unreadable_money() -> None:
    envelope = _envelope(
        source="track",
        type_="withdrawal_completed",
        event_id="t-list",
        subject="ply_1",
        when=at(0),
        payload=b'{"user_id": "ply_1", "properties": [25, "EUR"]}',
        tenant="casino-a",
        environment="live",
        received=None,
    )
    unreadable = read(envelope)
    assert isinstance(unreadable, UnreadableMoney)
    assert "'t-list'" in unreadable.reason
    assert "properties" in unreadable.reason


def test_readable_and_non_money_events_read_as_their_movements() -> None:
    good = money_track("ply_1", "deposit_success", 5, when=at(0), event_id="t-ok")
    assert read(good) == moved(good) == [only(good)]
    assert read(money_track("ply_1", "bet_lost", 5, when=at(0), event_id="t-lost")) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"amount": None}, "data.amount is missing"),
        ({"amount": "NaN"}, "data.amount must be a number"),
        ({"currency": None}, "data.currency is missing"),
        ({"is_win": "yes"}, "data.is_win must be true or false"),
        ({"is_bonus": 1}, "data.is_bonus must be true or false"),
    ],
)
def test_a_bad_unified_round_cannot_be_applied_by_either_reader(
    change: dict[str, Any], message: str
) -> None:
    data = {
        "unique_id": "u-bad",
        "timestamp": "2026-05-18T14:38:00Z",
        "player_id": "p",
        "game_id": "GD8",
        "round_id": "r",
        "amount": 1,
        "currency": "EUR",
        "is_win": False,
        "is_bonus": False,
        **change,
    }
    # Unified items are validated at ingest: bad money here is a bug, so it stops.
    item = unified("gameround", data)
    with pytest.raises(CannotApply, match="unified gameround event 'u-bad'") as raised:
        read(item)
    assert message in str(raised.value)
    with pytest.raises(CannotApply, match="unified gameround event 'u-bad'"):
        moved(item)


def test_a_unified_deposit_without_amount_cannot_be_applied() -> None:
    item = unified(
        "deposit",
        {
            "unique_id": "d-bad",
            "timestamp": "2026-05-18T14:38:00Z",
            "player_id": "p",
            "currency": "EUR",
        },
    )
    with pytest.raises(CannotApply, match=r"'d-bad': data\.amount is missing"):
        read(item)


def test_a_zero_amount_is_a_movement() -> None:
    # A free spin's bet is 0: still a round played, so still counted.
    assert only(gameround_item("p", when=at(0), unique_id="u", amount=0)).amount == 0


def test_within_decoding_once_each_event_is_decoded_once_for_every_reader() -> None:
    bet, bad = recorded(
        [
            money_track("p", "bet_placed", Decimal("2.50"), when=at(1), event_id="t-1"),
            unified(
                "deposit",
                {"unique_id": "u-1", "timestamp": iso(at(2)), "player_id": "p", "currency": "EUR"},
            ),
        ]
    )
    outside = read_movements(bet)
    with decoding_once():
        first = movements_of(bet)
        assert read_movements(bet) is first  # the same decoded list, not a second decoding
        assert first == outside
        for _ in range(2):  # a failure is not remembered: every reader is told
            with pytest.raises(CannotApply, match=r"data\.amount is missing"):
                movements_of(bad)
    assert read_movements(bet) is not first  # outside the block, nothing is kept
