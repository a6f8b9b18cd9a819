"""The iGaming event catalogue, and checking a track event against it.

The catalogue is the spec's taxonomy: 177 event names in 7 categories, plus ``game_ended``,
which the spec's own samples use but its event lists forget (see ``notes`` in the data
file), and 35 property tables: for those events, the property names the spec's samples
show and their JSON types. It lives in ``catalogue.json`` beside this module, generated from
the spec by ``scripts/build_catalogue.py`` and loaded once.

The catalogue describes; it does not define the wire format. ``/v1/events/track`` takes any
snake_case event name and free-form properties, so what the catalogue finds is reported
according to a mode:

* ``off``: no check at all;
* ``warn`` (the default): accept the event and return its ``Violation``s beside the result;
* ``strict``: reject the event (``UNKNOWN_EVENT``, or ``MISSING_FIELD`` / ``INVALID_TYPE``
  naming the property).

Properties beyond the table are always fine, and JSON numbers are one type (``number``):
the sample ``100`` does not make ``100.5`` wrong.
"""

import functools
from collections.abc import Mapping, Sequence
from enum import StrEnum
from importlib import resources
from types import MappingProxyType
from typing import Any, Final, Literal, get_args

import msgspec

__all__ = [
    "CATALOGUE_MODES",
    "Catalogue",
    "CatalogueMode",
    "JsonType",
    "Violation",
    "ViolationCode",
    "default_catalogue",
    "json_type_of",
]

JsonType = Literal["string", "number", "boolean", "null", "array", "object"]
CatalogueMode = Literal["off", "warn", "strict"]
CATALOGUE_MODES: Final[tuple[CatalogueMode, ...]] = get_args(CatalogueMode)

_ARTICLES: Final[Mapping[str, str]] = {
    "string": "a string",
    "number": "a number",
    "boolean": "a boolean",
    "null": "null",
    "array": "an array",
    "object": "an object",
}


_ABSENT: Final = object()


class ViolationCode(StrEnum):
    UNKNOWN_EVENT = "UNKNOWN_EVENT"
    MISSING_PROPERTY = "MISSING_PROPERTY"
    PROPERTY_TYPE_MISMATCH = "PROPERTY_TYPE_MISMATCH"


class Violation(msgspec.Struct, frozen=True, gc=False):
    """One way an event differs from what the catalogue expects."""

    code: ViolationCode
    event_name: str
    #: Reads as a sentence naming the field: ``properties.amount is required for ...``.
    message: str
    property: str | None = None
    expected: JsonType | None = None
    actual: JsonType | None = None


# Keyed by exact type: a decoder only ever produces these, and bool stays apart from int.
_JSON_TYPES: Final[Mapping[type, JsonType]] = {
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
    list: "array",
    dict: "object",
}


# Per JSON type, the exact types a JSON decoder produces for it (the inverse of the above).
_DECODED_TYPES: Final[Mapping[str, frozenset[type]]] = {
    json_type: frozenset(t for t, jt in _JSON_TYPES.items() if jt == json_type)
    for json_type in get_args(JsonType)
}


def json_type_of(value: Any) -> JsonType:
    """The JSON type of a value decoded from JSON into builtins."""
    json_type = _JSON_TYPES.get(type(value))
    if json_type is not None:
        return json_type
    if isinstance(value, bool):  # subclasses, for values not straight from a decoder
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list | tuple) else "object"


class Catalogue:
    """Event names by category, and the expected properties of some of them."""

    def __init__(
        self,
        categories: Mapping[str, Sequence[str]],
        properties: Mapping[str, Mapping[str, JsonType]],
        unlisted: Mapping[str, str] | None = None,
    ) -> None:
        """``categories``: category -> listed names; ``unlisted``: name -> category."""
        category_of = {name: category for category, names in categories.items() for name in names}
        self._listed: frozenset[str] = frozenset(category_of)
        category_of.update(unlisted or {})
        self._category_of: Mapping[str, str] = MappingProxyType(category_of)
        self._categories = tuple(categories)
        self._properties: Mapping[str, Mapping[str, JsonType]] = MappingProxyType(
            {name: MappingProxyType(dict(table)) for name, table in properties.items()}
        )
        unknown = sorted(set(self._properties) - set(category_of))
        if unknown:
            raise ValueError(f"property tables for events not in the catalogue: {unknown}")
        # For `check`'s fast path: per known name, each expected property with the exact
        # Python types a decoder gives for its JSON type. `()` for a name without a table.
        self._expected_types: Mapping[str, tuple[tuple[str, frozenset[type]], ...]] = {
            name: tuple(
                (prop, _DECODED_TYPES[json_type])
                for prop, json_type in self._properties.get(name, {}).items()
            )
            for name in category_of
        }

    @classmethod
    def from_json(cls, data: bytes) -> "Catalogue":
        """Load the document ``scripts/build_catalogue.py`` writes."""
        document = _FILE_DECODER.decode(data)
        return cls(
            categories={category.name: category.events for category in document.categories},
            properties=document.properties,
            unlisted={name: entry.category for name, entry in document.unlisted.items()},
        )

    @property
    def categories(self) -> tuple[str, ...]:
        """The category names, in spec order."""
        return self._categories

    @property
    def names(self) -> frozenset[str]:
        """Every known event name (the listed ones and the unlisted additions)."""
        return frozenset(self._category_of)

    @property
    def listed_names(self) -> frozenset[str]:
        """The names the spec's event lists contain."""
        return self._listed

    @property
    def property_tables(self) -> Mapping[str, Mapping[str, JsonType]]:
        """Event name -> expected property name -> JSON type."""
        return self._properties

    def category_of(self, event_name: str) -> str | None:
        return self._category_of.get(event_name)

    def events_in(self, category: str) -> tuple[str, ...]:
        return tuple(name for name, cat in self._category_of.items() if cat == category)

    def __contains__(self, event_name: object) -> bool:
        return event_name in self._category_of

    def __len__(self) -> int:
        return len(self._category_of)

    def check(self, event_name: str, properties: Mapping[str, Any] | None) -> list[Violation]:
        """What differs between an event and the catalogue; empty when nothing does."""
        # Called for every track event: the common answer, nothing, is found with one
        # lookup and one type test per expected property; anything else takes the full
        # path below, which words the findings.
        expected_types = self._expected_types.get(event_name)
        if expected_types is not None:
            if not expected_types:
                return []
            if properties is not None:
                get = properties.get
                for name, types in expected_types:
                    if type(get(name, _ABSENT)) not in types:
                        break
                else:
                    return []
        return self._findings(event_name, properties)

    def _findings(self, event_name: str, properties: Mapping[str, Any] | None) -> list[Violation]:
        if event_name not in self._category_of:
            return [
                Violation(
                    ViolationCode.UNKNOWN_EVENT,
                    event_name,
                    f"event_name '{event_name}' is not in the event catalogue",
                )
            ]
        expected = self._properties.get(event_name)
        if not expected:
            return []
        given = properties or {}
        violations: list[Violation] = []
        for name, json_type in expected.items():
            value = given.get(name, _ABSENT)
            if value is _ABSENT:
                violations.append(
                    Violation(
                        ViolationCode.MISSING_PROPERTY,
                        event_name,
                        f"properties.{name} is required for {event_name} ({_ARTICLES[json_type]})",
                        property=name,
                        expected=json_type,
                    )
                )
                continue
            actual = _JSON_TYPES.get(type(value)) or json_type_of(value)
            if actual != json_type:
                violations.append(
                    Violation(
                        ViolationCode.PROPERTY_TYPE_MISMATCH,
                        event_name,
                        f"properties.{name} must be {_ARTICLES[json_type]} for {event_name}, "
                        f"got {actual}",
                        property=name,
                        expected=json_type,
                        actual=actual,
                    )
                )
        return violations


class _Category(msgspec.Struct, frozen=True):
    name: str
    events: list[str]


class _Unlisted(msgspec.Struct, frozen=True):
    category: str


class _CatalogueFile(msgspec.Struct, frozen=True):
    categories: list[_Category]
    properties: dict[str, dict[str, JsonType]]
    unlisted: dict[str, _Unlisted] = {}


_FILE_DECODER: Final = msgspec.json.Decoder(_CatalogueFile)


@functools.cache
def default_catalogue() -> Catalogue:
    """The catalogue shipped with the package (read once, on first use)."""
    data = resources.files("ingest").joinpath("catalogue.json").read_bytes()
    return Catalogue.from_json(data)
