"""The webhook's signature and how answers are read."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from delivery.webhook import classify, sign, verify_signature

SECRET = "0123456789abcdef0123"
BODY = b'{"events": []}'


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()

    assert sign(SECRET, "1700000000", BODY) == f"sha256={expected}"


def test_a_receiver_accepts_a_fresh_genuine_request_only() -> None:
    signature = sign(SECRET, "1700000000", BODY)

    assert verify_signature(SECRET, "1700000000", BODY, signature, now=1700000100)
    assert not verify_signature(SECRET, "1700000000", BODY + b" ", signature, now=1700000100)
    assert not verify_signature(
        "another-secret-0123", "1700000000", BODY, signature, now=1700000100
    )
    assert not verify_signature(SECRET, "1700000000", BODY, signature, now=1700000400), "old"
    assert not verify_signature(SECRET, "soon", BODY, signature, now=1700000000)


@pytest.mark.parametrize(
    ("status", "delivered", "permanent"),
    [
        (200, True, False),
        (204, True, False),
        (400, False, True),
        (401, False, True),
        (404, False, True),
        (422, False, True),
        (408, False, False),
        (429, False, False),
        (500, False, False),
        (503, False, False),
        (302, False, False),
    ],
)
def test_2xx_delivers_4xx_refuses_but_408_429_and_the_rest_retry(
    status: int, delivered: bool, permanent: bool
) -> None:
    assert classify(status) == (delivered, permanent)
