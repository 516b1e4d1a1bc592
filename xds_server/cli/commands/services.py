"""``xdsctl services``: the services and the domains each answers."""

from __future__ import annotations

import argparse

from xds_server.cli import render
from xds_server.cli.client import OperatorClient
from xds_server.cli.options import Commands, command, group
from xds_server.cli.result import Result
from xds_server.v1 import operator_pb2 as pb


def set_domains(args: argparse.Namespace, client: OperatorClient) -> Result:
    """Make service ``name`` answer exactly the ``--domain`` values (created if new)."""
    request = pb.SetServiceDomainsRequest(service=args.name, domains=args.domain)
    return Result(render.domains_set(client.call("SetServiceDomains", request), args.output))


def list_services(args: argparse.Namespace, client: OperatorClient) -> Result:
    """Every service, with its domains and revision."""
    services = client.call("ListServices", pb.ListServicesRequest()).services
    return Result(render.services(services, args.output))


def register(commands: Commands) -> None:
    """Add ``services`` and its subcommands to ``commands``."""
    services = group(commands, "services", "services and their domains")
    parser = command(
        services,
        "set",
        set_domains,
        "set the domains a service answers",
        ("text", "yaml", "json"),
        service=False,
    )
    parser.add_argument("name")
    parser.add_argument(
        "--domain",
        action="append",
        default=[],
        required=True,
        metavar="DOMAIN",
        help="a domain (repeatable), e.g. shop.example.com",
    )
    command(
        services, "list", list_services, "list services", ("table", "yaml", "json"), service=False
    )
