"""The event catalogue: its contents, its checks, and the generator that builds it."""

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from ingest_examples import REPO, SPEC_DIR

from ingest import Catalogue, Violation, ViolationCode, default_catalogue
from ingest.catalogue import json_type_of

CATALOGUE_JSON = REPO / "ingest" / "catalogue.json"
SPEC = SPEC_DIR / "player-platform-api.md"


def load_builder() -> ModuleType:
    path = REPO / "scripts" / "build_catalogue.py"
    spec = importlib.util.spec_from_file_location("build_catalogue", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("build_catalogue", module)
    spec.loader.exec_module(module)
    return module


builder = load_builder()
catalogue = default_catalogue()


# --- contents ----------------------------------------------------------------------------------


def test_catalogue_lists_177_names_in_7_categories() -> None:
    assert len(catalogue.listed_names) == 177
    assert catalogue.categories == (
        "Registration & Authentication",
        "Session & Engagement",
        "Financial",
        "Bonus & Promotions",
        "Gameplay",
        "Sportsbook",
        "CRM & Engagement",
    )


def test_catalogue_category_sizes_match_the_spec_event_lists() -> None:
    listed = {
        category: len(set(catalogue.events_in(category)) & catalogue.listed_names)
        for category in catalogue.categories
    }

    assert listed == {
        "Registration & Authentication": 29,
        "Session & Engagement": 20,
        "Financial": 29,
        "Bonus & Promotions": 25,
        "Gameplay": 43,
        "Sportsbook": 15,
        "CRM & Engagement": 16,
    }


def test_catalogue_knows_game_ended_though_no_event_list_names_it() -> None:
    assert "game_ended" in catalogue
    assert "game_ended" not in catalogue.listed_names
    assert catalogue.category_of("game_ended") == "Gameplay"
    assert catalogue.names == catalogue.listed_names | {"game_ended"}
    assert len(catalogue) == 178


def test_catalogue_keeps_game_closed_from_the_gameplay_list() -> None:
    assert catalogue.category_of("game_closed") == "Gameplay"


def test_push_clicked_belongs_to_the_category_that_lists_it_not_where_its_table_sits() -> None:
    assert catalogue.category_of("push_clicked") == "Session & Engagement"
    assert catalogue.property_tables["push_clicked"] == {
        "template_id": "string",
        "deep_link": "string",
        "notification_type": "string",
    }


def test_catalogue_has_35_property_tables() -> None:
    assert len(catalogue.property_tables) == 35


def test_property_types_are_inferred_from_the_sample_values() -> None:
    tables = catalogue.property_tables

    assert tables["wallet_balance_updated"]["previous_balance"] == "number"
    assert tables["login_success"]["two_factor_used"] == "boolean"
    assert tables["session_started"]["app_version"] == "string"  # 3.4.1 is not a number
    assert tables["kyc_submitted"]["attempt_number"] == "number"
    assert tables["email_verified"]["email"] == "string"


def test_default_catalogue_is_loaded_once() -> None:
    assert default_catalogue() is default_catalogue()


def test_the_catalogue_ships_inside_the_package() -> None:
    assert CATALOGUE_JSON.exists()
    assert Catalogue.from_json(CATALOGUE_JSON.read_bytes()).names == catalogue.names


def test_a_property_table_for_an_unknown_event_is_refused() -> None:
    with pytest.raises(ValueError, match="not in the catalogue"):
        Catalogue(categories={"A": ["a"]}, properties={"b": {"x": "string"}})


# --- check ---------------------------------------------------------------------------------------

DEPOSIT_PROPS = {"amount": 100, "currency": "EUR", "payment_method": "visa"}


def test_check_finds_nothing_wrong_with_a_matching_event() -> None:
    assert catalogue.check("deposit_success", DEPOSIT_PROPS) == []


def test_check_accepts_any_number_for_a_number_property_and_extra_properties() -> None:
    properties = DEPOSIT_PROPS | {"amount": 99.95, "promo": "X"}

    assert catalogue.check("deposit_success", properties) == []


def test_check_accepts_any_properties_for_a_known_event_without_a_table() -> None:
    assert catalogue.check("logout", None) == []
    assert catalogue.check("logout", {"anything": [1]}) == []


def test_check_reports_an_unknown_event() -> None:
    assert catalogue.check("spin_the_wheel", {}) == [
        Violation(
            ViolationCode.UNKNOWN_EVENT,
            "spin_the_wheel",
            "event_name 'spin_the_wheel' is not in the event catalogue",
        )
    ]


def test_check_reports_each_missing_property() -> None:
    violations = catalogue.check("deposit_success", {"amount": 1})

    assert violations == [
        Violation(
            ViolationCode.MISSING_PROPERTY,
            "deposit_success",
            "properties.currency is required for deposit_success (a string)",
            property="currency",
            expected="string",
        ),
        Violation(
            ViolationCode.MISSING_PROPERTY,
            "deposit_success",
            "properties.payment_method is required for deposit_success (a string)",
            property="payment_method",
            expected="string",
        ),
    ]


def test_check_without_properties_reports_every_expected_one_missing() -> None:
    violations = catalogue.check("deposit_success", None)

    assert [v.property for v in violations] == ["amount", "currency", "payment_method"]


@pytest.mark.parametrize(
    ("value", "actual"),
    [("100", "string"), (True, "boolean"), (None, "null"), ([100], "array"), ({"v": 1}, "object")],
)
def test_check_reports_a_property_of_the_wrong_json_type(value: Any, actual: str) -> None:
    violations = catalogue.check("deposit_success", DEPOSIT_PROPS | {"amount": value})

    assert violations == [
        Violation(
            ViolationCode.PROPERTY_TYPE_MISMATCH,
            "deposit_success",
            f"properties.amount must be a number for deposit_success, got {actual}",
            property="amount",
            expected="number",
            actual=actual,  # type: ignore[arg-type]
        )
    ]


_SAMPLE_OF: dict[str, Any] = {
    "string": "s",
    "number": 1.5,
    "boolean": False,
    "null": None,
    "array": [],
    "object": {},
}


def test_check_accepts_every_table_filled_with_values_of_its_types() -> None:
    # The common case takes a fast path; it must agree with the full check everywhere.
    for name, table in catalogue.property_tables.items():
        properties = {prop: _SAMPLE_OF[json_type] for prop, json_type in table.items()}
        assert catalogue.check(name, properties) == [], name


def test_check_takes_subclasses_of_the_json_types_as_those_types() -> None:
    class Amount(int):
        pass

    class Text(str):
        pass

    properties = DEPOSIT_PROPS | {"amount": Amount(5), "currency": Text("EUR")}
    assert catalogue.check("deposit_success", properties) == []


@pytest.mark.parametrize(
    ("value", "json_type"),
    [
        ("s", "string"),
        (1, "number"),
        (1.5, "number"),
        (True, "boolean"),
        (False, "boolean"),
        (None, "null"),
        ([], "array"),
        ({}, "object"),
    ],
)
def test_json_type_of_decoded_values(value: Any, json_type: str) -> None:
    assert json_type_of(value) == json_type


# --- the generator -------------------------------------------------------------------------------


@pytest.mark.skipif(not SPEC.exists(), reason="the spec is not checked out beside the repo")
def test_committed_catalogue_is_what_the_generator_makes_from_the_spec() -> None:
    assert builder.render(builder.build(SPEC.read_text())) == CATALOGUE_JSON.read_text()


@pytest.mark.skipif(not SPEC.exists(), reason="the spec is not checked out beside the repo")
def test_generator_check_mode_reports_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    assert builder.main(["--spec", str(SPEC), "--check"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_generator_check_mode_fails_when_the_file_is_stale(tmp_path: Path) -> None:
    spec = tmp_path / "spec.md"
    spec.write_text(MINI_SPEC)
    stale = tmp_path / "catalogue.json"
    stale.write_text("{}\n")

    assert builder.main(["--spec", str(spec), "--out", str(stale), "--check"]) == 1
    assert builder.main(["--spec", str(spec), "--out", str(stale)]) == 0
    assert builder.main(["--spec", str(spec), "--out", str(stale), "--check"]) == 0


@pytest.mark.parametrize(
    ("cell", "json_type"),
    [
        ("100", "number"),
        ("320.50", "number"),
        ("true", "boolean"),
        ('"EUR"', "string"),
        ("EUR", "string"),
        ("3.4.1", "string"),
        ("Samsung S24", "string"),
        ('"<user@example.com>"', "string"),
        ("/casino/slots", "string"),
    ],
)
def test_generator_infers_a_json_type_from_a_table_cell(cell: str, json_type: str) -> None:
    assert builder.infer_type(cell) == json_type


MINI_SPEC = """# Spec

## Complete iGaming CRM Event Taxonomy

### Alpha

#### Event List

a\\_one a\\_two

#### Sample Event Property Structures

**a\\_one**

| Property | Sample Value |
| -------- | ------------ |
| count    | 2            |
| label    | "x"          |

**Sample JSON**

```
{"event_name": "b_extra", "properties": {"flag": true}}
```

**Sample JSON**

```
{"event_name": "a_one", "properties": {"count": 2, "label": "x"}}
```

**b\\_extra**

| Property | Sample Value |
| -------- | ------------ |
| flag     | true         |

### Beta

#### Event List

b\\_one
"""


def test_generator_reads_lists_tables_and_samples_and_adds_unlisted_events() -> None:
    document = builder.build(MINI_SPEC)

    assert document["categories"] == [
        {"name": "Alpha", "events": ["a_one", "a_two"]},
        {"name": "Beta", "events": ["b_one"]},
    ]
    assert document["properties"] == {
        "a_one": {"count": "number", "label": "string"},
        "b_extra": {"flag": "boolean"},
    }
    assert document["unlisted"] == {"b_extra": {"category": "Alpha"}}
    loaded = Catalogue.from_json(json.dumps(document).encode())
    assert loaded.category_of("b_extra") == "Alpha"


def test_generator_refuses_a_table_its_sample_contradicts() -> None:
    contradicted = MINI_SPEC.replace('"count": 2', '"count": "2"')

    with pytest.raises(builder.CatalogueBuildError, match="disagree"):
        builder.build(contradicted)


def test_generator_refuses_a_spec_without_the_taxonomy() -> None:
    with pytest.raises(builder.CatalogueBuildError, match="not found"):
        builder.build("# nothing here\n")
