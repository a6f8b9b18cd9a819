"""Deciding stored / duplicate / conflict: the same rule for every backend.

A backend finds which keys of a call are already in the log (its storage
question); this module answers the rest, including keys repeated inside the call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, TypeVar

from eventstore.envelope import same_content
from eventstore.results import AppendResult

__all__ = ["Key", "Keyed", "decide"]

Key = tuple[str, str, str]
"""(tenant, environment, event_id)"""


class Keyed(Protocol):
    """What deciding needs of an envelope (a backend may pass richer objects)."""

    @property
    def tenant(self) -> str: ...
    @property
    def environment(self) -> str: ...
    @property
    def event_id(self) -> str: ...
    @property
    def payload(self) -> bytes: ...


E = TypeVar("E", bound=Keyed)


def decide(
    envelopes: Sequence[E],
    existing: Mapping[Key, tuple[int, bytes]],
    head: int,
) -> tuple[list[AppendResult], list[tuple[int, E]]]:
    """Results in call order, and the (position, envelope) pairs to insert.

    `existing` maps keys already in the log to (position, stored payload); new
    events get positions head + 1, head + 2, ... in call order.
    """
    results: list[AppendResult] = []
    new: list[tuple[int, E]] = []
    in_call: dict[Key, tuple[int, bytes]] = {}
    for envelope in envelopes:
        key = (envelope.tenant, envelope.environment, envelope.event_id)
        earlier = in_call.get(key) or existing.get(key)
        if earlier is None:
            head += 1
            in_call[key] = (head, envelope.payload)
            new.append((head, envelope))
            results.append(AppendResult("stored", head))
            continue
        position, payload = earlier
        if same_content(payload, envelope.payload):
            results.append(AppendResult("duplicate", position))
        else:
            results.append(AppendResult("conflict", position, payload))
    return results, new
