"""bench/scale stays working: its tiniest configuration end to end, against the local
PostgreSQL and NATS servers and wrk.

Timings are never asserted here (they belong in the benchmark's tables); what is checked
is the tables' shape, that every measurement was made and checked, and that every
figure is positive.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench import scale as bench
from bench.ingest_servers import ensure_wrk
from tests.delivery.conftest import nats_url
from tests.eventstore.conftest import pg_base_url

__all__ = ["nats_url", "pg_base_url"]

pytestmark = pytest.mark.postgres


@pytest.fixture
def wrk() -> str:
    """wrk, installed as the benchmarks install it (`ensure_wrk`: the Debian package,
    when running as root); a fresh CI machine has no wrk until then."""
    try:
        return ensure_wrk()
    except SystemExit as missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{missing}; CI=true requires it", pytrace=False)
        pytest.skip(str(missing))


def test_the_tiniest_run_prints_every_table_and_writes_json_and_markdown(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    pg_base_url: str,
    nats_url: str,
    wrk: str,
) -> None:
    out_json, out_md = tmp_path / "scale.json", tmp_path / "scale.md"
    code = bench.main([
        "--quick", "--processes", "1", "--duration", "1", "--warmup", "0",
        "--append-events", "300", "--delivery-events", "300",
        "--pg-url", pg_base_url, "--nats-url", nats_url, "--workdir", str(tmp_path),
        "--json", str(out_json), "--markdown", str(out_md),
    ])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0, printed
    for title in (
        "Ingest over HTTP",
        "PostgreSQL append ceiling",
        "Delivery from a prefilled PostgreSQL log",
        "PostgreSQL storage per event",
    ):
        assert title in printed, title

    data = json.loads(out_json.read_text())
    assert data["notes"] == [], "every measurement was made and passed its checks"
    assert {(s["backend"], s["processes"]) for s in data["ingest"]} == {
        ("sqlite", 1),
        ("postgres", 1),
    }
    assert {s["writer"] for s in data["append"]} == {"playerlog", "locked", "unlocked"}
    assert {s["case"] for s in data["delivery"]} == {c.key for c in bench.CASES}
    for sample in data["ingest"] + data["append"] + data["delivery"]:
        assert sample["events_per_second"] > 0, sample
    assert all(s["stored"] > 0 and s["problems"] == [] for s in data["ingest"])
    assert {(s["writer"], s["call_size"]) for s in data["append"]} == set(bench.CONFIGS)
    assert all(s["stored"] == 300 for s in data["append"])
    assert all(s["events"] == 300 for s in data["delivery"])

    tables = data["tables"]
    ingest = next(t for name, t in tables.items() if name.startswith("Ingest"))
    assert [row[:2] for row in ingest["rows"]] == [
        ["playerlog serve, SQLite file", "1"],
        ["playerlog serve, PostgreSQL", "1"],
    ]
    assert ingest["rows"][1][ingest["headers"].index("vs lock ceiling")].endswith("x")
    append = next(t for name, t in tables.items() if name.startswith("PostgreSQL append"))
    assert len(append["rows"]) == len(bench.CONFIGS)
    delivery = next(t for name, t in tables.items() if name.startswith("Delivery"))
    assert len(delivery["rows"]) == len(bench.CASES)
    for row in delivery["rows"]:
        assert row[delivery["headers"].index("ev/s")] != "-"
    sizes = next(t for name, t in tables.items() if name.startswith("PostgreSQL storage"))
    (size_row,) = sizes["rows"]
    assert int(size_row[sizes["headers"].index("total B/event")].replace(",", "")) > 100

    markdown = out_md.read_text()
    assert "| server | processes | ev/s |" in markdown
    assert "Command: `python -m bench.scale --quick" in markdown
