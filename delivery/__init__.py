"""Delivery of the log's events to downstream destinations (HTTP webhooks, NATS
JetStream), per tenant, at least once and in log order, with retries, dead letters
and replay. docs/destinations.md is the guide.

Public surface for the composition root: `DeliveryRunner` (run it beside the
projections, in the process holding the runner lock), `add_destination_commands` /
`run_destination_command` (CLI), and `delivery.routes.DESTINATION_ROUTES` (admin
API; imported from there so that this package stays free of the web framework for
the worker).
"""

from __future__ import annotations

from delivery.cli import add_destination_commands, run_destination_command
from delivery.config import Destination, DestinationError, load_destinations_file
from delivery.operations import DestinationStatus, ReplayError, replay, status_of
from delivery.runner import DeliveryRunner, apply_destinations_file
from delivery.store import DeadLetter, DeliveryState, DestinationStore, UnknownDestination
from delivery.webhook import sign, verify_signature

__all__ = [
    "DeadLetter",
    "DeliveryRunner",
    "DeliveryState",
    "Destination",
    "DestinationError",
    "DestinationStatus",
    "DestinationStore",
    "ReplayError",
    "UnknownDestination",
    "add_destination_commands",
    "apply_destinations_file",
    "load_destinations_file",
    "replay",
    "run_destination_command",
    "sign",
    "status_of",
    "verify_signature",
]
