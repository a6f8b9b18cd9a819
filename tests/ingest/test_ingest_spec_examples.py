"""Every example body of both spec files decodes as the spec documents it."""

import json
import sys
import types
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from ingest_examples import (
    CONTEXT,
    EXAMPLES,
    JS_NOW,
    RECEIVED_AT,
    SPEC_DIR,
    call_argument,
    example,
    example_text,
    js_literal,
    markdown_rendered,
    taxonomy_samples,
)

from ingest import (
    EventErrorCode,
    RequestInvalid,
    TrackBatch,
    UnifiedRequest,
    decode_identify,
    decode_track,
    decode_unified,
)
from ingest.money import dec_hook, float_hook

PLAYER_SPEC = SPEC_DIR / "player-platform-api.md"
UNIFIED_SPEC = SPEC_DIR / "unibo-consumer-api.md"


def track_response(batch: TrackBatch) -> dict[str, Any]:
    """The 202 body the spec documents, built the way the HTTP layer builds it."""
    return {
        "accepted": len(batch.accepted),
        "rejected": batch.rejected,
        "errors": msgspec.to_builtins(batch.errors),
    }


# --- the copies are verbatim ------------------------------------------------------------------


@pytest.mark.skipif(not PLAYER_SPEC.exists(), reason="the spec is not checked out beside the repo")
@pytest.mark.parametrize(
    "path",
    sorted(p for p in EXAMPLES.rglob("*") if p.is_file()),
    ids=lambda p: p.relative_to(EXAMPLES).as_posix(),
)
def test_every_example_file_is_a_verbatim_copy_from_the_spec(path: Path) -> None:
    spec = PLAYER_SPEC.read_text() + UNIFIED_SPEC.read_text()
    content = path.read_text().rstrip("\n")
    assert content in spec or content in markdown_rendered(spec)


def test_the_taxonomy_has_35_sample_jsons_one_per_property_table() -> None:
    assert len(taxonomy_samples()) == 35


# --- POST /v1/events/track --------------------------------------------------------------------


def test_track_example_request_is_accepted_in_full() -> None:
    body = example("track_request.json")

    batch = decode_track(body, **CONTEXT)

    assert track_response(batch) == json.loads(example("track_response_full_success.json"))
    sent = json.loads(body)["events"]
    for accepted, event in zip(batch.accepted, sent, strict=True):
        envelope = accepted.envelope
        assert envelope.event_id == event["event_id"]
        assert envelope.type == event["event_name"]
        assert envelope.subject == event["user_id"]
        assert envelope.source == "track"
        assert envelope.payload in body  # sliced out, not re-encoded
        assert json.loads(envelope.payload) == event


def test_track_example_without_event_name_gives_the_documented_partial_failure() -> None:
    body = example_text("track_request.json")
    without_name = body.replace('"event_name": "bet_placed", ', "")
    assert without_name != body

    batch = decode_track(without_name.encode(), **CONTEXT)

    assert track_response(batch) == json.loads(example("track_response_partial_failure.json"))


def test_track_example_bet_placed_lacks_wallet_type_so_warn_mode_reports_it() -> None:
    batch = decode_track(example("track_request.json"), **CONTEXT, catalogue_mode="warn")

    assert len(batch.accepted) == 2
    assert [(v.index, v.violation.message) for v in batch.violations] == [
        (1, "properties.wallet_type is required for bet_placed (a string)")
    ]


def test_track_example_bet_placed_is_rejected_in_strict_mode_for_its_missing_wallet_type() -> None:
    batch = decode_track(example("track_request.json"), **CONTEXT, catalogue_mode="strict")

    assert [(e.index, e.code, e.message) for e in batch.errors] == [
        (
            1,
            EventErrorCode.MISSING_FIELD,
            "properties.wallet_type is required for bet_placed (a string)",
        )
    ]


def test_track_curl_example_body_is_accepted() -> None:
    batch = decode_track(example("track_curl.json"), **CONTEXT, catalogue_mode="strict")

    assert track_response(batch) == {"accepted": 1, "rejected": 0, "errors": []}
    assert batch.accepted[0].envelope.event_id == "a1b2c3d4-0000-0000-0000-0007"


def test_track_fetch_example_body_is_accepted() -> None:
    source = example_text("track_fetch.js.txt")
    body = js_literal(call_argument(source, "JSON.stringify"))

    batch = decode_track(msgspec.json.encode(body), **CONTEXT, catalogue_mode="strict")

    assert track_response(batch) == {"accepted": 1, "rejected": 0, "errors": []}
    assert batch.accepted[0].envelope.occurred_at.isoformat() == "2026-05-18T15:59:59.123000+00:00"


def test_track_axios_example_body_is_accepted() -> None:
    source = example_text("track_axios.js.txt")
    body = {"events": js_literal(call_argument(source, "trackEvents"))}

    batch = decode_track(msgspec.json.encode(body), **CONTEXT, catalogue_mode="strict")

    assert track_response(batch) == {"accepted": 1, "rejected": 0, "errors": []}


class FakeResponse:
    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def json(self) -> dict[str, Any]:
        return self._data


class FakeRequests(types.ModuleType):
    """Stands in for ``requests``: answers the way the HTTP layer answers, using ingest."""

    def __init__(self) -> None:
        super().__init__("requests")
        self.bodies: list[bytes] = []

    def post(self, url: str, json: Any = None, headers: Any = None) -> FakeResponse:
        body = msgspec.json.encode(json)
        self.bodies.append(body)
        if url.endswith("/v1/events/track"):
            return FakeResponse(track_response(decode_track(body, **CONTEXT)))
        if url.endswith("/v1/events/identify"):
            return FakeResponse({"user_id": decode_identify(body, **CONTEXT).subject})
        raise AssertionError(f"unexpected url {url}")


def run_python_example(name: str, monkeypatch: pytest.MonkeyPatch, replace: str = "") -> None:
    source = example_text(name)
    # The spec lost the indentation of the for loop's body; restore that one indent.
    source = source.replace('\nprint(f"Event[', '\n    print(f"Event[')
    if replace:
        assert replace in source
        source = source.replace(replace, "")
    monkeypatch.setitem(sys.modules, "requests", FakeRequests())
    exec(compile(source, name, "exec"), {"__name__": "example"})


def test_track_python_example_runs_against_ingest(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run_python_example("track_requests.py.txt", monkeypatch)

    assert capsys.readouterr().out == "Accepted: 1, Rejected: 0\n"


def test_track_python_example_prints_the_error_of_an_event_without_event_name(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run_python_example(
        "track_requests.py.txt", monkeypatch, replace='"event_name": "deposit_success",\n'
    )

    assert capsys.readouterr().out == (
        "Accepted: 0, Rejected: 1\nEvent[0] failed: MISSING_FIELD - event_name is required\n"
    )


# --- POST /v1/events/identify -----------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["identify_registration.json", "identify_vip_upgrade.json", "identify_curl.json"]
)
def test_identify_example_bodies_are_accepted_and_echo_the_user_id(name: str) -> None:
    body = example(name)

    envelope = decode_identify(body, **CONTEXT)

    assert {"user_id": envelope.subject} == json.loads(example("identify_response.json"))
    assert envelope.source == "identify"
    assert envelope.type == "identify"
    assert envelope.payload == body
    assert envelope.occurred_at == datetime.fromisoformat(json.loads(body)["timestamp"])
    assert envelope.received_at == RECEIVED_AT


def test_identify_fetch_example_body_is_accepted() -> None:
    body = js_literal(call_argument(example_text("identify_fetch.js.txt"), "JSON.stringify"))

    envelope = decode_identify(msgspec.json.encode(body), **CONTEXT)

    assert envelope.subject == "ply_776192"
    assert json.loads(envelope.payload)["timestamp"] == JS_NOW


def test_identify_axios_example_body_is_accepted() -> None:
    source = example_text("identify_axios.js.txt")
    user_id, traits = js_literal("[" + call_argument(source, "identifyPlayer") + "]")
    # identifyPlayer(userId, traits) posts this body:
    body = {"user_id": user_id, "timestamp": JS_NOW, "traits": traits}

    envelope = decode_identify(msgspec.json.encode(body), **CONTEXT)

    assert envelope.subject == "ply_776192"


def test_identify_python_example_runs_against_ingest(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run_python_example("identify_requests.py.txt", monkeypatch)

    assert capsys.readouterr().out == "Profile updated for: ply_776192\n"


def test_identify_without_user_id_gives_the_spec_example_422() -> None:
    body = json.loads(example("identify_registration.json"))
    del body["user_id"]

    with pytest.raises(RequestInvalid) as caught:
        decode_identify(msgspec.json.encode(body), **CONTEXT)

    assert caught.value.to_dict() == json.loads(example("error_422.json"))


# --- the taxonomy's samples -------------------------------------------------------------------


@pytest.mark.parametrize(("event_name", "sample"), sorted(taxonomy_samples().items()))
def test_taxonomy_sample_is_a_valid_track_event_that_passes_the_strict_catalogue(
    event_name: str, sample: bytes
) -> None:
    body = b'{"events": [' + sample + b"]}"

    batch = decode_track(body, **CONTEXT, catalogue_mode="strict")

    assert batch.errors == []
    assert batch.violations == []
    assert batch.accepted[0].envelope.type == event_name
    assert batch.accepted[0].envelope.payload == sample


def test_game_ended_sample_passes_the_strict_catalogue_though_no_event_list_names_it() -> None:
    body = b'{"events": [' + taxonomy_samples()["game_ended"] + b"]}"

    batch = decode_track(body, **CONTEXT, catalogue_mode="strict")

    assert [a.envelope.type for a in batch.accepted] == ["game_ended"]


def test_all_taxonomy_samples_decode_as_one_batch_in_one_typed_pass() -> None:
    samples = taxonomy_samples()
    body = b'{"events": [' + b",".join(samples.values()) + b"]}"

    batch = decode_track(body, **CONTEXT, catalogue_mode="strict")

    assert [a.envelope.type for a in batch.accepted] == list(samples)
    assert batch.errors == []


# --- POST /api/v1/events ----------------------------------------------------------------------


def test_unified_example_body_gives_one_envelope_per_item() -> None:
    body = example("unified_curl.json")

    envelopes = decode_unified(body, **CONTEXT)

    assert [(e.type, e.event_id, e.subject) for e in envelopes] == [
        ("gameround", "9cd823d3fe", "StQ-1"),
        ("gameround", "9cd823d3ff", "StQ-1"),
        ("deposit", "ab12cd34ef", "StQ-1"),
    ]
    assert [e.occurred_at.isoformat() for e in envelopes] == [
        "2025-01-15T12:00:00+00:00",
        "2025-01-15T12:00:01+00:00",
        "2025-01-15T12:01:00+00:00",
    ]
    assert all(e.source == "unified" and e.payload in body for e in envelopes)
    items = json.loads(body)["items"]
    assert [json.loads(e.payload) for e in envelopes] == items


def test_unified_example_amounts_decode_exactly() -> None:
    decoder = msgspec.json.Decoder(UnifiedRequest, dec_hook=dec_hook, float_hook=float_hook)

    request = decoder.decode(example("unified_curl.json"))

    amounts = [item.data.amount for item in request.items]  # type: ignore[union-attr]
    assert amounts == [Decimal("0.5"), Decimal("1.2"), Decimal("100")]
    assert [str(amount) for amount in amounts] == ["0.5", "1.2", "100"]
