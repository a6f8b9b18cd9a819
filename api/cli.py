"""The `playerlog` command line. `playerlog --help` and each command's `--help`
are its documentation; tests check that every command and option is documented."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec

from api.cli_log import add_log_commands, run_log_command
from api.cli_projections import (
    DESTINATIONS_HELP,
    RATES_HELP,
    VIEWS_HELP,
    add_projection_commands,
    add_worker_command,
    run_projection_command,
    run_worker,
)
from api.tokens import ENVIRONMENTS, SCOPES, TokenError, TokenService, parse_duration
from delivery.cli import add_destination_commands, run_destination_command
from eventstore import open_log, resolve_db_url

__all__ = ["build_parser", "main"]

DB_HELP = "database URL (default: $PLAYERLOG_DB, else sqlite:///playerlog.db)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="playerlog",
        description="playerlog: an event store for iGaming player events.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the HTTP API", description=(
        "Run the HTTP API (uvicorn with uvloop and httptools). Every process opens the "
        "same database; on SQLite they share one file. The projections run in-process: "
        "exactly one process drives them (serve's or a worker's), the others stand by."))
    serve.add_argument("--db", help=DB_HELP)
    serve.add_argument("--views", metavar="PATH|URL", help=VIEWS_HELP)
    serve.add_argument("--eur-rates", metavar="PATH", help=RATES_HELP)
    serve.add_argument("--destinations", metavar="FILE", help=DESTINATIONS_HELP)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8001, help="port (default 8001)")
    serve.add_argument("--workers", type=int, default=1,
                       help="API processes (default 1)")
    serve.add_argument("--no-projections", action="store_true",
                       help="serve the API only; `playerlog worker` drives the projections "
                       "($PLAYERLOG_PROJECTIONS=0)")
    add_worker_command(commands)
    add_projection_commands(commands)
    add_log_commands(commands)
    add_destination_commands(commands)

    tokens = commands.add_parser("tokens", help="create, list and revoke API tokens",
                                 description="Work on API tokens directly in the database.")
    token_commands = tokens.add_subparsers(dest="tokens_command", required=True,
                                           metavar="ACTION")
    create = token_commands.add_parser("create", help="create a token and print it once",
                                       description="Create a token; its secret is shown once.")
    create.add_argument("--db", help=DB_HELP)
    create.add_argument("--tenant", required=True, help="the tenant (casino brand) it belongs to")
    create.add_argument("--env", required=True, choices=ENVIRONMENTS, help="live or staging")
    create.add_argument("--scope", action="append", required=True, choices=SCOPES,
                        help="a scope it grants; repeat for several")
    create.add_argument("--expires-in", help="lifetime such as 30d, 12h, 90m (default: none)")
    create.add_argument("--name", default="", help="a label for operators")
    create.add_argument("--json", action="store_true",
                        help="print a JSON object whose `token` field holds the secret")
    listing = token_commands.add_parser("list", help="list tokens (never their secrets)",
                                        description="List tokens, newest last.")
    listing.add_argument("--db", help=DB_HELP)
    listing.add_argument("--tenant", help="only this tenant's tokens")
    listing.add_argument("--json", action="store_true", help="print JSON lines")
    revoke = token_commands.add_parser("revoke", help="revoke a token by id",
                                       description="Revoke a token; it stops working at once "
                                       "in this process and within seconds in running servers.")
    revoke.add_argument("--db", help=DB_HELP)
    revoke.add_argument("token_id", metavar="ID", help="the token's id (from `tokens list`)")
    return parser


def _serve(args: argparse.Namespace) -> int:
    import uvicorn  # noqa: PLC0415  (only the server needs it)

    os.environ["PLAYERLOG_DB"] = resolve_db_url(args.db)
    if args.views:
        os.environ["PLAYERLOG_VIEWS"] = args.views
    if args.eur_rates:
        os.environ["PLAYERLOG_EUR_RATES"] = args.eur_rates
    if args.destinations:
        os.environ["PLAYERLOG_DESTINATIONS"] = args.destinations
    if args.no_projections:
        os.environ["PLAYERLOG_PROJECTIONS"] = "0"
    uvicorn.run(
        "api.server:app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        access_log=False,  # playerlog writes its own JSON access lines
        log_level="warning",
        lifespan="on",
    )
    return 0


def _tokens(args: argparse.Namespace) -> int:
    log = open_log(args.db)
    try:
        service = TokenService(log)
        if args.tokens_command == "create":
            try:
                expires = parse_duration(args.expires_in) if args.expires_in else None
                token, secret = service.create(
                    tenant=args.tenant, environment=args.env, scopes=args.scope,
                    name=args.name, expires_in=expires,
                )
            except TokenError as problem:
                sys.stderr.write(f"playerlog tokens create: {problem}\n")
                return 2
            if args.json:
                sys.stdout.write(
                    msgspec.json.encode({**msgspec.to_builtins(token), "token": secret}).decode()
                    + "\n"
                )
            else:
                sys.stdout.write(
                    f"{secret}\n\nid {token.id}, tenant {token.tenant}, env {token.environment}, "
                    f"scopes {' '.join(token.scopes)}. The secret is shown only now.\n"
                )
        elif args.tokens_command == "list":
            now = datetime.now(UTC)
            for token in service.list(args.tenant):
                if args.json:
                    sys.stdout.write(msgspec.json.encode(token).decode() + "\n")
                else:
                    # An expired token used to be listed as "active".
                    state = (
                        "revoked" if token.revoked_at
                        else "active" if token.usable_at(now)
                        else "expired"
                    )
                    sys.stdout.write(
                        f"{token.id}  {token.tenant}  {token.environment}  "
                        f"{','.join(token.scopes)}  {state}  {token.name}\n"
                    )
        else:
            try:
                token = service.revoke(args.token_id)
            except KeyError:
                sys.stderr.write(f"playerlog tokens revoke: no token {args.token_id}\n")
                return 1
            sys.stdout.write(f"revoked {token.id}\n")
        return 0
    finally:
        log.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "worker":
        return run_worker(args)
    if args.command == "projections":
        return run_projection_command(args)
    if args.command == "log":
        return run_log_command(args)
    if args.command == "destinations":
        return run_destination_command(args)
    return _tokens(args)


if __name__ == "__main__":
    sys.exit(main())
