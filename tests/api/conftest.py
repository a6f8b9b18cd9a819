"""A playerlog app over a fresh SQLite file per test, and tokens to call it with."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from api.app import Services, build_services, create_asgi
from api.settings import Settings

EXAMPLES = Path(__file__).resolve().parents[1] / "ingest" / "examples"


def example(name: str) -> bytes:
    return (EXAMPLES / name).read_bytes().rstrip(b"\n")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(db_url=f"sqlite:///{tmp_path / 'api.db'}", access_log=False)


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    built = build_services(settings)
    yield built
    built.close()


@pytest.fixture
def client(services: Services) -> Iterator[TestClient[Any]]:
    with TestClient(create_asgi(services=services)) as test_client:
        yield test_client


MakeToken = Callable[..., str]


@pytest.fixture
def make_token(services: Services) -> MakeToken:
    def make(
        *scopes: str, tenant: str = "casino-a", environment: str = "live", **kwargs: Any
    ) -> str:
        _, secret = services.tokens.create(
            tenant=tenant,
            environment=environment,
            scopes=list(scopes or ("events:write",)),
            **kwargs,
        )
        return secret

    return make


@pytest.fixture
def writer(make_token: MakeToken) -> dict[str, str]:
    """Headers of a client holding an events:write token for casino-a/live."""
    return {
        "Authorization": f"Bearer {make_token('events:write')}",
        "Content-Type": "application/json",
    }
