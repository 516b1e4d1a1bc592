"""``xdsctl tokens``: create, list and revoke API tokens (admin)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from xds_server.auth.roles import Role
from xds_server.cli import render
from xds_server.cli.client import OperatorClient
from xds_server.cli.options import Commands, command, dry_run_option, group
from xds_server.cli.result import Result
from xds_server.cli.secret_files import warn_if_stdout_shared, write_secret
from xds_server.v1 import operator_pb2 as pb


def create(args: argparse.Namespace, client: OperatorClient) -> Result:
    """Create a token; it goes to ``--output-file`` (mode 0600) or, this once, to stdout."""
    request = pb.CreateTokenRequest(name=args.name, role=args.role)
    reply = client.call("CreateToken", request)
    if client.dry_run:  # no token exists, so none is shown
        return Result(f"token {reply.info.name} ({reply.info.role}) would be created\n")
    if args.output_file is not None:
        write_secret(args.output_file, reply.token)
        print(
            f"token {reply.info.name} ({reply.info.role}) created and written to "
            f"{args.output_file} (mode 0600); the server keeps only its SHA-256",
            file=sys.stderr,
        )
        return Result("")
    print(
        f"token {reply.info.name} ({reply.info.role}) created: it is shown this once, "
        "store it now (the server keeps only its SHA-256)",
        file=sys.stderr,
    )
    warn_if_stdout_shared("the token")
    return Result(render.token_created(reply, args.output))


def list_tokens(args: argparse.Namespace, client: OperatorClient) -> Result:
    """Every token's name, role and maker (the server holds no secret to show)."""
    tokens = client.call("ListTokens", pb.ListTokensRequest()).tokens
    return Result(render.tokens(tokens, args.output))


def revoke(args: argparse.Namespace, client: OperatorClient) -> Result:
    """Revoke token ``name`` on every replica."""
    info = client.call("RevokeToken", pb.RevokeTokenRequest(name=args.name))
    if client.dry_run and args.output == "text":
        return Result(f"token {info.name} ({info.role}) would be revoked\n")
    return Result(render.token_revoked(info, args.output))


def register(commands: Commands) -> None:
    """Add ``tokens`` and its subcommands to ``commands``."""
    tokens = group(commands, "tokens", "API tokens (admin)")
    parser = command(
        tokens,
        "create",
        create,
        "create a token and print it (once)",
        ("text", "yaml", "json"),
        service=False,
    )
    parser.add_argument("--name", required=True, help="what the token is for, e.g. ci-bot")
    dry_run_option(parser)
    parser.add_argument(
        "--output-file",
        type=Path,
        metavar="FILE",
        help="write the token to FILE, readable by you only (mode 0600), instead of stdout",
    )
    parser.add_argument(
        "--role",
        required=True,
        choices=[role.label for role in Role],
        help="viewer: reads; operator: releases and traffic; admin: domains, tokens, state",
    )
    command(
        tokens,
        "list",
        list_tokens,
        "list tokens (never their secrets)",
        render.READ_OUTPUTS,
        service=False,
    )
    revoke_parser = command(
        tokens,
        "revoke",
        revoke,
        "revoke a token on every replica",
        ("text", "yaml", "json"),
        service=False,
    )
    revoke_parser.add_argument("name")
    dry_run_option(revoke_parser)
