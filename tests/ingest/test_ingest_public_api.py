"""The package's public surface, and what it must not depend on."""

import ast
from pathlib import Path

import pytest

import ingest

PACKAGE = Path(ingest.__file__).parent
FORBIDDEN = {"api", "eventstore", "projections", "litestar", "sqlite3", "sqlite_utils", "psycopg"}


def test_every_public_name_is_importable_from_the_package() -> None:
    missing = [name for name in ingest.__all__ if not hasattr(ingest, name)]

    assert missing == []


def test_the_public_api_has_the_three_decoders_and_the_error_types() -> None:
    for name in ("decode_track", "decode_identify", "decode_unified", "RequestInvalid", "Envelope"):
        assert name in ingest.__all__


@pytest.mark.parametrize("module", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_ingest_imports_no_other_project_package_nor_http_or_sql(module: Path) -> None:
    tree = ast.parse(module.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])

    assert imported & FORBIDDEN == set()


@pytest.mark.parametrize("module", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_ingest_never_reads_the_spec_at_run_time(module: Path) -> None:
    source = module.read_text()

    assert "/work/" not in source
    assert ".md" not in source
