"""Request bodies for bench/ingest: templates the wrk script fills with fresh ids.

Each template is one realistic request body (a 50-event track batch, or a 1,000-item
unified batch) cut into literal fragments around *slots*. The Lua script
(`bench/ingest_lua/post.lua`) fills every slot per request with a per-request base
(kind 1: an id prefix unique to the run, the wrk thread and the request; kind 2: a
timestamp prefix that moves on by one second per request) followed by the slot's
fixed suffix. So every event id, unique_id and round_id is new in every request, and
timestamps vary, while the JSON work per request stays small enough for one core.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import msgspec

from ingest import TrackRequest, UnifiedRequest
from ingest.money import dec_hook, float_hook

Kind = Literal["track", "unified"]

ID_KIND: Final = 1
TIME_KIND: Final = 2

# A slot in a body under construction: `\x01<kind><suffix>\x02`.
_SLOT: Final = re.compile("\x01([12])([^\x02]*)\x02")

# What a slot's base looks like once the Lua script fills it (for checking here).
SAMPLE_ID_BASE: Final = "3f9a1c2b-0001-00000001f3"
SAMPLE_TIME_BASE: Final = "2026-05-18T15:16:07."

_TRACK_DECODER: Final = msgspec.json.Decoder(TrackRequest)
_UNIFIED_DECODER: Final = msgspec.json.Decoder(
    UnifiedRequest, dec_hook=dec_hook, float_hook=float_hook
)


def _id(suffix: str) -> str:
    return f"\x01{ID_KIND}{suffix}\x02"


def _time(index: int) -> str:
    """Milliseconds (and the zone) after the request's timestamp base."""
    return f"\x01{TIME_KIND}{(index * 37) % 1000:03d}Z\x02"


@dataclass(frozen=True)
class Template:
    fragments: list[str]
    """Literal text; one more than there are slots."""
    kinds: list[int]
    suffixes: list[str]

    def fill(self, id_base: str = SAMPLE_ID_BASE, time_base: str = SAMPLE_TIME_BASE) -> str:
        """The body as the Lua script builds it (for checks and examples)."""
        bases = {ID_KIND: id_base, TIME_KIND: time_base}
        parts = [self.fragments[0]]
        for kind, suffix, fragment in zip(
            self.kinds, self.suffixes, self.fragments[1:], strict=True
        ):
            parts += [bases[kind], suffix, fragment]
        return "".join(parts)


def template_of(text: str) -> Template:
    pieces = _SLOT.split(text)
    # split() gives: fragment, kind, suffix, fragment, kind, suffix, ..., fragment
    return Template(
        fragments=pieces[0::3],
        kinds=[int(k) for k in pieces[1::3]],
        suffixes=pieces[2::3],
    )


# -- track: 50-event batches shaped like the spec's example ------------------------------

_GAMES: Final = (
    "gates_of_olympus",
    "sweet_bonanza",
    "book_of_dead",
    "starburst",
    "lightning_roulette",
    "big_bass_bonanza",
    "mega_moolah",
)
_PROVIDERS: Final = ("pragmatic_play", "play_n_go", "netent", "evolution", "microgaming")
_CURRENCIES: Final = ("EUR", "GBP", "SEK", "CAD")
_PAYMENT_METHODS: Final = ("visa", "mastercard", "trustly", "paypal", "skrill", "apple_pay")
# (event_name, weight): bets and spins dominate an iGaming stream; every name is in the
# catalogue and every property table below matches it (no warn-mode findings).
_TRACK_NAMES: Final = (
    ("bet_placed", 30),
    ("bet_won", 12),
    ("bet_lost", 16),
    ("slot_spin_completed", 10),
    ("game_started", 6),
    ("wallet_balance_updated", 8),
    ("login_success", 5),
    ("deposit_success", 5),
    ("session_started", 4),
    ("page_viewed", 4),
)


def _track_properties(rng: random.Random, name: str, currency: str) -> str:
    game = rng.choice(_GAMES)
    if name == "bet_placed":
        return (
            f'{{"bet_amount":{rng.choice((0.2, 0.5, 1, 2, 5, 10))},"currency":"{currency}",'
            f'"wallet_type":"{rng.choice(("cash", "bonus"))}","game_id":"{game}"}}'
        )
    if name == "bet_won":
        multiplier = rng.choice((2, 3, 5, 9, 25))
        return (
            f'{{"win_amount":{round(multiplier * rng.choice((0.2, 1, 2)), 2)},'
            f'"multiplier":{multiplier},'
            f'"currency":"{currency}","game_id":"{game}"}}'
        )
    if name == "bet_lost":
        return (
            f'{{"bet_amount":{rng.choice((0.2, 0.5, 1, 2, 5))},"currency":"{currency}",'
            f'"wallet_type":"cash","game_id":"{game}"}}'
        )
    if name == "slot_spin_completed":
        return (
            f'{{"game_id":"{game}","provider_id":"{rng.choice(_PROVIDERS)}",'
            f'"win_amount":{rng.randint(0, 40) / 2},"currency":"{currency}"}}'
        )
    if name == "game_started":
        return (
            f'{{"game_id":"{game}","provider_id":"{rng.choice(_PROVIDERS)}",'
            f'"game_type":"slot","balance_at_start":{rng.randint(100, 90000) / 100}}}'
        )
    if name == "wallet_balance_updated":
        before = rng.randint(100, 90000) / 100
        return (
            f'{{"previous_balance":{before},"new_balance":{round(before + 2, 2)},'
            f'"currency":"{currency}","update_reason":"bet_settled"}}'
        )
    if name == "login_success":
        return (
            f'{{"login_method":"email_password","two_factor_used":'
            f'{rng.choice(("true", "false"))},"device_id":"dev_{rng.randint(10000, 99999)}"}}'
        )
    if name == "deposit_success":
        return (
            f'{{"amount":{rng.choice((10, 20, 50, 100, 250))},"currency":"{currency}",'
            f'"payment_method":"{rng.choice(_PAYMENT_METHODS)}"}}'
        )
    if name == "session_started":
        return '{"app_version":"5.12.0","network_type":"wifi","device_model":"Pixel 8"}'
    return f'{{"page":"/casino/{game}","referrer":"/lobby"}}'


def track_body(rng: random.Random, events: int) -> str:
    """One track request: a few players' events, in the spec's field order."""
    names = [n for n, _ in _TRACK_NAMES]
    weights = [w for _, w in _TRACK_NAMES]
    players = [
        (f"ply_{rng.randint(100_000, 999_999)}", f"sess_{rng.getrandbits(32):08x}")
        for _ in range(rng.randint(1, 5))
    ]
    parts = []
    for index in range(events):
        user, session = rng.choice(players)
        name = rng.choices(names, weights)[0]
        device, platform = rng.choice(
            (("mobile", "android"), ("mobile", "ios"), ("desktop", "web"), ("tablet", "ios"))
        )
        parts.append(
            f'{{"user_id":"{user}","session_id":"{session}","event_id":"{_id(f"-{index:04d}")}",'
            f'"event_name":"{name}","timestamp":"{_time(index)}","device_type":"{device}",'
            f'"platform":"{platform}","brand_id":"brand_0{rng.randint(1, 4)}",'
            f'"properties":{_track_properties(rng, name, rng.choice(_CURRENCIES))}}}'
        )
    return '{"events":[' + ",".join(parts) + "]}"


# -- unified: 1,000-item batches, mostly game rounds ----------------------------------------


def _money(rng: random.Random, choices: tuple[int, ...]) -> str:
    cents = rng.choice(choices)
    return f"{cents // 100}.{cents % 100:02d}"


def unified_body(rng: random.Random, items: int) -> str:
    """One unified request: bets and wins paired by round_id (about 92%), deposits,
    logins, the odd withdrawal."""
    players = [f"StQ-{rng.randint(1, 99999)}" for _ in range(40)]
    parts: list[str] = []
    round_no = 0
    while len(parts) < items:
        index = len(parts)
        player = rng.choice(players)
        common = f'"unique_id":"{_id(f"-{index:04d}")}","timestamp":"{_time(index)}",'
        draw = rng.random()
        if draw < 0.04:
            parts.append(
                f'{{"event":"deposit","data":{{{common}"player_id":"{player}",'
                f'"amount":{_money(rng, (1000, 2000, 5000, 10000))},"currency":"EUR",'
                f'"method":"Credit Card"}}}}'
            )
        elif draw < 0.075:
            parts.append(f'{{"event":"login","data":{{{common}"player_id":"{player}"}}}}')
        elif draw < 0.08:
            parts.append(
                f'{{"event":"withdraw","data":{{{common}"player_id":"{player}",'
                f'"amount":{_money(rng, (5000, 20000))},"currency":"EUR","method":"Trustly"}}}}'
            )
        else:
            round_no += 1
            game = f"GD{rng.randint(1, 400)}"
            bet = _money(rng, (10, 20, 50, 100, 200, 500))
            round_id = f"rnd-{_id(f'-r{round_no:04d}')}"
            parts.append(_game_round(common, player, game, round_id, bet, is_win=False))
            if rng.random() < 0.45 and len(parts) < items:
                index = len(parts)
                common = f'"unique_id":"{_id(f"-{index:04d}")}","timestamp":"{_time(index)}",'
                win = _money(rng, (20, 50, 120, 400, 1500))
                parts.append(_game_round(common, player, game, round_id, win, is_win=True))
    return '{"items":[' + ",".join(parts) + "]}"


def _game_round(
    common: str, player: str, game: str, round_id: str, amount: str, *, is_win: bool
) -> str:
    return (
        f'{{"event":"gameround","data":{{{common}"player_id":"{player}","game_id":"{game}",'
        f'"round_id":"{round_id}","amount":{amount},"currency":"EUR",'
        f'"is_win":{"true" if is_win else "false"},"is_bonus":false}}}}'
    )


# -- templates for the Lua script ---------------------------------------------------------


def make_templates(kind: Kind, count: int, size: int, seed: int) -> list[Template]:
    """`count` different bodies of `size` events or items each, checked against the
    request Struct (so a template the server would reject never gets measured)."""
    rng = random.Random(seed)
    maker = track_body if kind == "track" else unified_body
    templates = [template_of(maker(rng, size)) for _ in range(count)]
    for template in templates:
        check(kind, template.fill().encode(), size)
    return templates


def check(kind: Kind, body: bytes, size: int) -> None:
    if kind == "track":
        got = len(_TRACK_DECODER.decode(body).events)
    else:
        got = len(_UNIFIED_DECODER.decode(body).items)
    if got != size:
        raise ValueError(f"a {kind} template holds {got} events, not {size}")


def lua_string(text: str) -> str:
    """A Lua string literal (the bodies are ASCII JSON without control characters)."""
    if not text.isascii() or any(ord(c) < 32 for c in text):
        raise ValueError("templates must be printable ASCII")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_lua_templates(path: Path, templates: list[Template], events_per_request: int) -> None:
    """A Lua chunk returning the templates, loaded by the wrk script with dofile()."""
    lines = ["return {", f"  events = {events_per_request},", "  bodies = {"]
    for template in templates:
        lines.append("    {")
        lines.append("      frags = {" + ",".join(map(lua_string, template.fragments)) + "},")
        lines.append("      kinds = {" + ",".join(map(str, template.kinds)) + "},")
        lines.append("      sufs = {" + ",".join(map(lua_string, template.suffixes)) + "},")
        lines.append("    },")
    lines += ["  },", "}"]
    path.write_text("\n".join(lines) + "\n")


def mean_body_bytes(templates: list[Template]) -> float:
    return sum(len(t.fill()) for t in templates) / len(templates)
