"""`playerlog destinations list|status|apply|delete|replay|dead-letters`.

`add_destination_commands` adds the `destinations` command to the `playerlog`
parser; `run_destination_command` runs it. Every action opens the log (`--db` /
PLAYERLOG_DB) and works on the destinations' records directly, so it works the
same whether or not a server or worker is running; a running deliverer sees a
change within seconds. docs/destinations.md is the guide.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

import msgspec

from delivery.config import ENVIRONMENTS, DestinationError
from delivery.operations import (
    DestinationStatus,
    ReplayError,
    dead_letter_view,
    public_settings,
    replay,
    status_of,
)
from delivery.runner import apply_destinations_file
from delivery.store import DestinationStore, UnknownDestination
from eventstore import open_log

__all__ = ["add_destination_commands", "run_destination_command"]

DB_HELP: Final = "database URL (default: $PLAYERLOG_DB, else sqlite:///playerlog.db)"
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2


def _time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time such as 2025-01-31T12:00:00Z"
        ) from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r}: give a time zone, e.g. Z or +01:00")
    return moment


def _narrowing(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", help=DB_HELP)
    parser.add_argument("--tenant", help="the destination's tenant (when several use the name)")
    parser.add_argument(
        "--env",
        choices=ENVIRONMENTS,
        help="the destination's environment (when several use the name)",
    )


def add_destination_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Add `destinations ...` to the `playerlog` command tree."""
    top = commands.add_parser(
        "destinations",
        help="configure downstream destinations, see their status, replay, dead letters",
        description="Downstream destinations (HTTP webhooks, NATS JetStream) that every "
        "accepted event of a tenant is delivered to, at least once and in log order. "
        "See docs/destinations.md.",
    )
    actions = top.add_subparsers(dest="destinations_command", required=True, metavar="ACTION")

    listing = actions.add_parser(
        "list",
        help="list destinations and their settings",
        description="List destinations (webhook secrets hidden).",
    )
    listing.add_argument("--db", help=DB_HELP)
    listing.add_argument("--tenant", help="only this tenant's destinations")
    listing.add_argument("--json", action="store_true", help="print JSON lines")

    status = actions.add_parser(
        "status",
        help="checkpoint, lag, errors and dead letters of destinations",
        description="Checkpoint, log head, lag (positions behind the head), delivered "
        "count, the last error, failed attempts at the batch under way, dead letters.",
    )
    _narrowing(status)
    status.add_argument("name", nargs="?", metavar="NAME", help="one destination (default: all)")
    status.add_argument("--json", action="store_true", help="print JSON lines")

    apply = actions.add_parser(
        "apply",
        help="create or replace destinations from a TOML or JSON file",
        description="Validate every destination of FILE, then store them (create or "
        "replace). Destinations not in the file are left alone. Nothing is stored when "
        "one is invalid. `playerlog worker --destinations FILE` does the same at start.",
    )
    apply.add_argument("--db", help=DB_HELP)
    apply.add_argument("file", metavar="FILE", help="a .toml or .json file of destinations")

    remove = actions.add_parser(
        "delete",
        help="delete a destination, its checkpoint and its dead letters",
        description="Delete a destination; its deliverer stops within seconds.",
    )
    _narrowing(remove)
    remove.add_argument("name", metavar="NAME", help="the destination")

    again = actions.add_parser(
        "replay",
        help="deliver again from a position or a time",
        description="Move the destination's checkpoint back: every matching event from "
        "that point on is delivered again, in order (receivers dedup by event id). "
        "--from-time starts a minute before the time given (received_at is stamped by "
        "several processes); it also re-sends dead-lettered events.",
    )
    _narrowing(again)
    again.add_argument("name", metavar="NAME", help="the destination")
    start = again.add_mutually_exclusive_group(required=True)
    start.add_argument(
        "--from-position",
        type=int,
        metavar="N",
        help="deliver again from log position N (included)",
    )
    start.add_argument(
        "--from-time",
        type=_time,
        metavar="TIME",
        help="deliver again the events received from TIME (ISO 8601 with a "
        "time zone, e.g. 2025-01-31T12:00:00Z)",
    )

    dead = actions.add_parser(
        "dead-letters",
        help="list the events delivery gave up on",
        description="Events given up on (refused by the destination, or still failing "
        "after dead_letter_after): position, event id, reason, first failure, attempts. "
        "They stay in the log: `replay --from-position` delivers them again.",
    )
    _narrowing(dead)
    dead.add_argument("name", metavar="NAME", help="the destination")
    dead.add_argument("--json", action="store_true", help="print JSON lines")


def _line(value: Any) -> None:
    sys.stdout.write(msgspec.json.encode(value).decode() + "\n")


def _describe(status: DestinationStatus) -> str:
    health = (
        f"failing ({status.attempts} attempts): {status.last_error}" if status.attempts else "ok"
    )
    return (
        f"{status.name}  {status.tenant}/{status.environment}  {status.kind}"
        f"{'' if status.enabled else '  (disabled)'}  checkpoint {status.checkpoint}  "
        f"head {status.head}  lag {status.lag}  delivered {status.delivered}  "
        f"dead letters {status.dead_letters}  {health}"
    )


def run_destination_command(args: argparse.Namespace) -> int:
    """Run one `destinations` action; returns the exit status."""
    action: str = args.destinations_command
    log = open_log(args.db)
    try:
        store = DestinationStore(log)
        return _ACTIONS[action](store, args)
    except (DestinationError, ReplayError, UnknownDestination) as problem:
        message = problem.args[0] if problem.args else str(problem)
        sys.stderr.write(f"playerlog destinations {action}: {message}\n")
        return EXIT_USAGE if not isinstance(problem, UnknownDestination) else EXIT_FAILED
    finally:
        log.close()


def _list(store: DestinationStore, args: argparse.Namespace) -> int:
    for destination in store.destinations(args.tenant):
        shown = public_settings(destination)
        if args.json:
            _line(shown)
        else:
            target = (
                destination.webhook.url
                if destination.webhook is not None
                else f"{' '.join(destination.nats.server_list())} "
                f"{destination.nats.subject_prefix}.*"
                if destination.nats is not None
                else ""
            )
            sys.stdout.write(
                f"{destination.name}  {destination.tenant}/{destination.environment}  "
                f"{destination.kind}  {target}{'' if destination.enabled else '  (disabled)'}\n"
            )
    return EXIT_OK


def _status(store: DestinationStore, args: argparse.Namespace) -> int:
    if args.name:
        chosen = [store.find(args.name, args.tenant, args.env)]
    else:
        chosen = store.destinations(args.tenant, args.env)
    for destination in chosen:
        status = status_of(store, destination)
        if args.json:
            _line(status)
        else:
            sys.stdout.write(_describe(status) + "\n")
    return EXIT_OK


def _apply(store: DestinationStore, args: argparse.Namespace) -> int:
    for destination in apply_destinations_file(store.log, args.file):
        sys.stdout.write(
            f"stored {destination.name} ({destination.tenant}/{destination.environment}, "
            f"{destination.kind})\n"
        )
    return EXIT_OK


def _delete(store: DestinationStore, args: argparse.Namespace) -> int:
    destination = store.find(args.name, args.tenant, args.env)
    store.delete(destination)
    sys.stdout.write(
        f"deleted {destination.name} ({destination.tenant}/{destination.environment})\n"
    )
    return EXIT_OK


def _replay(store: DestinationStore, args: argparse.Namespace) -> int:
    destination = store.find(args.name, args.tenant, args.env)
    checkpoint = replay(
        store, destination, from_position=args.from_position, from_time=args.from_time
    )
    sys.stdout.write(
        f"{destination.name}: checkpoint set to {checkpoint}; events after it are "
        "delivered again (receivers dedup by event id)\n"
    )
    return EXIT_OK


def _dead_letters(store: DestinationStore, args: argparse.Namespace) -> int:
    destination = store.find(args.name, args.tenant, args.env)
    for letter in store.dead_letters(destination):
        view = dead_letter_view(letter)
        if args.json:
            _line(view)
        else:
            sys.stdout.write(
                f"{letter.position}  {letter.event_id}  {letter.type}  attempts "
                f"{letter.attempts}  first failure {view['first_failure']}  {letter.reason}\n"
            )
    return EXIT_OK


_ACTIONS: dict[str, Callable[[DestinationStore, argparse.Namespace], int]] = {
    "list": _list,
    "status": _status,
    "apply": _apply,
    "delete": _delete,
    "replay": _replay,
    "dead-letters": _dead_letters,
}
