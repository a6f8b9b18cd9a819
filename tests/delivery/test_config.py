"""Destination settings: what is accepted, and errors that name the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from delivery.config import (
    DestinationError,
    decode_destination,
    load_destinations_file,
    parse_seconds,
)

WEBHOOK: dict[str, Any] = {
    "name": "crm",
    "tenant": "casino-a",
    "environment": "live",
    "kind": "webhook",
    "webhook": {"url": "https://crm.example/hooks", "secret": "s" * 32},
}


def _decode(**changes: Any) -> Any:
    return decode_destination(json.dumps({**WEBHOOK, **changes}))


def test_defaults_fill_in_retry_batch_and_filters() -> None:
    destination = _decode()

    assert destination.retry.seconds() == (1.0, 300.0, 3600.0)
    assert destination.batch_size == 100
    assert destination.sources == []
    assert destination.types == []
    assert destination.wants_source("unified")


@pytest.mark.parametrize(
    ("text", "seconds"), [("250ms", 0.25), ("30s", 30), ("5m", 300), ("1h", 3600), (2, 2.0)]
)
def test_durations_read_as_seconds(text: str | int, seconds: float) -> None:
    assert parse_seconds("timeout", text) == seconds


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "CRM prod"}, "name: 'CRM prod' must be"),
        ({"environment": "prod"}, "environment: 'prod' must be live or staging"),
        ({"kind": "kafka"}, "kind: 'kafka' is not one of webhook or nats - at `$.kind`"),
        ({"webhook": None}, "webhook: a webhook destination needs"),
        ({"webhook": {"url": "ftp://x", "secret": "s" * 32}}, "url: must be an http"),
        ({"webhook": {"url": "https://x", "secret": "short"}}, "secret: must be at least 16"),
        ({"sources": ["email"]}, "sources: 'email' is not one of track, identify or unified"),
        ({"batch_size": 0}, "batch_size: must be 1 to 1000"),
        ({"retry": {"dead_letter_after": "soon"}}, "dead_letter_after: 'soon' is not a duration"),
        ({"retry": {"initial_backoff": 10, "max_backoff": 1}}, "max_backoff (1s) must not be"),
        ({"colour": "red"}, "Object contains unknown field `colour`"),
        (
            {"nats": {"servers": "nats://127.0.0.1:4222"}},
            "nats: not allowed on a webhook destination",
        ),
    ],
)
def test_invalid_settings_are_refused_naming_the_field(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(DestinationError) as raised:
        _decode(**changes)

    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("nats", "message"),
    [
        ({"servers": "http://x"}, "servers: 'http://x' is not a nats://"),
        ({"servers": "nats://x", "subject_prefix": "a..b"}, "subject_prefix: 'a..b'"),
        ({"servers": "nats://x", "subject_prefix": "a.>"}, "subject_prefix"),
        ({"servers": "nats://x", "create_stream": True}, "stream: create_stream needs"),
        ({"servers": "nats://x", "stream": "my.stream"}, "stream: 'my.stream' must be"),
        ({"servers": "nats://x", "max_in_flight": 0}, "max_in_flight: must be 1 to 1000"),
        ({"servers": "nats://x", "max_in_flight": 1001}, "max_in_flight: must be 1 to 1000"),
    ],
)
def test_invalid_nats_settings_are_refused_naming_the_field(
    nats: dict[str, Any], message: str
) -> None:
    with pytest.raises(DestinationError, match=r"at `\$\.nats`") as raised:
        _decode(kind="nats", webhook=None, nats=nats)

    assert message in str(raised.value)


def test_a_toml_file_gives_its_destinations(tmp_path: Path) -> None:
    path = tmp_path / "destinations.toml"
    path.write_text(
        """
[[destinations]]
name = "crm"
tenant = "casino-a"
environment = "live"
kind = "webhook"
types = ["deposit_completed"]
webhook = { url = "https://crm.example/hooks", secret = "0123456789abcdef0123" }
retry = { initial_backoff = "500ms", max_backoff = "1m", dead_letter_after = "1h" }

[[destinations]]
name = "broker"
tenant = "casino-a"
environment = "staging"
kind = "nats"
nats = { servers = "nats://127.0.0.1:4222", subject_prefix = "playerlog.staging" }
""",
        encoding="utf-8",
    )

    crm, broker = load_destinations_file(path)

    assert crm.retry.seconds() == (0.5, 60.0, 3600.0)
    assert crm.types == ["deposit_completed"]
    assert broker.nats is not None
    assert broker.nats.server_list() == ["nats://127.0.0.1:4222"]


def test_a_file_error_names_the_file_and_the_entry(tmp_path: Path) -> None:
    path = tmp_path / "destinations.json"
    path.write_text(json.dumps({"destinations": [WEBHOOK, {**WEBHOOK, "batch_size": -1}]}))

    with pytest.raises(
        DestinationError, match=r"destinations.json: batch_size: .* - at `\$.destinations\[1\]`"
    ):
        load_destinations_file(path)


def test_a_name_defined_twice_for_one_tenant_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "destinations.json"
    path.write_text(json.dumps({"destinations": [WEBHOOK, WEBHOOK]}))

    with pytest.raises(DestinationError, match="'crm' of casino-a/live is defined twice"):
        load_destinations_file(path)


def test_a_file_of_another_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "destinations.yaml"
    path.write_text("destinations: []")

    with pytest.raises(DestinationError, match=r"use a \.toml or \.json file"):
        load_destinations_file(path)


def test_the_example_file_of_the_docs_is_valid(tmp_path: Path) -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "destinations.md"
    example = docs.read_text(encoding="utf-8").split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "destinations.toml"
    path.write_text(example, encoding="utf-8")

    crm, broker = load_destinations_file(path)

    assert (crm.kind, broker.kind) == ("webhook", "nats")
    assert crm.retry.seconds() == (1.0, 300.0, 3600.0)
