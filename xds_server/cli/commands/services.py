"""``xdsctl services``: the services, the domains each answers, and its routing settings."""

from __future__ import annotations

import argparse

from xds_server.cli import render
from xds_server.cli.client import EXIT_USAGE, OperatorClient
from xds_server.cli.options import (
    Commands,
    command,
    dry_run_option,
    group,
    guard,
    header_switch,
    if_revision,
)
from xds_server.cli.result import Result
from xds_server.errors import CliError
from xds_server.v1 import operator_pb2 as pb


def configure(args: argparse.Namespace, client: OperatorClient) -> Result:
    """Change service ``name``'s domains and routing settings (created if new)."""
    settings = (args.override_header, args.shadow_header, args.mirror_host_suffix)
    if not args.domain and all(value is None for value in settings):
        raise CliError(
            "give a setting to change: --domain HOST, --[no-]override-header, "
            "--[no-]shadow-header or --[no-]mirror-host-suffix",
            EXIT_USAGE,
        )
    request = pb.ConfigureServiceRequest(service=args.name, domains=args.domain, **guard(args))
    for field in ("override_header", "shadow_header"):
        value = getattr(args, field)
        if value is not None:
            setattr(request, field, value)
    if args.mirror_host_suffix is not None:
        request.mirror_host_suffix = args.mirror_host_suffix
    reply = client.call("ConfigureService", request)
    return Result(render.service_configured(reply, args.output), reply.service.revision)


def list_services(args: argparse.Namespace, client: OperatorClient) -> Result:
    """Every service, with its domains, revision and routing settings."""
    services = client.call("ListServices", pb.ListServicesRequest()).services
    return Result(render.services(services, args.output))


def register(commands: Commands) -> None:
    """Add ``services`` and its subcommands to ``commands``."""
    services = group(commands, "services", "services, their domains and routing settings")
    parser = command(
        services,
        "set",
        configure,
        "set a service's domains and routing settings",
        ("text", "yaml", "json"),
        service=False,
    )
    parser.add_argument("name")
    dry_run_option(parser)
    parser.add_argument(
        "--domain",
        action="append",
        default=[],
        metavar="DOMAIN",
        help="a domain (repeatable; replaces the service's domains), e.g. shop.example.com",
    )
    header_switch(
        parser,
        "override-header",
        "a request whose HEADER names a tag reaches that tag whatever the weights "
        "(anyone who knows it reaches unreleased builds: see docs/security.md)",
    )
    header_switch(
        parser,
        "shadow-header",
        "mirrored requests carry HEADER: 1 (default x-shadow)",
    )
    suffix = parser.add_mutually_exclusive_group()
    suffix.add_argument(
        "--mirror-host-suffix",
        dest="mirror_host_suffix",
        action="store_const",
        const=True,
        help="Envoy appends -shadow to a shadow's Host (the default)",
    )
    suffix.add_argument(
        "--no-mirror-host-suffix",
        dest="mirror_host_suffix",
        action="store_const",
        const=False,
        help="shadows keep the Host of the request they copy",
    )
    if_revision(parser)
    command(services, "list", list_services, "list services", render.READ_OUTPUTS, service=False)
