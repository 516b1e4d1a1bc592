"""``xdsctl deployments``: list, inspect, re-point and forget deployments."""

from __future__ import annotations

import argparse
import sys

from xds_server.cli import render
from xds_server.cli.client import EXIT_REFUSED, OperatorClient
from xds_server.cli.options import (
    Commands,
    command,
    dry_run_option,
    endpoint_option,
    endpoints,
    group,
    wait_options,
)
from xds_server.cli.result import Handler, Result
from xds_server.errors import CliError
from xds_server.v1 import operator_pb2 as pb


def list_deployments(args: argparse.Namespace, client: OperatorClient) -> Result:
    """The deployments of ``--service``, or of every service with ``-A``."""
    service = "" if args.all_services else args.service
    request = pb.ListDeploymentsRequest(service=service)
    deployments = client.call("ListDeployments", request).deployments
    return Result(render.deployments(deployments, args.output))


def get_deployment(args: argparse.Namespace, client: OperatorClient) -> Result:
    """One deployment by id."""
    deployment = client.call("GetDeployment", pb.GetDeploymentRequest(id=args.id))
    return Result(render.deployment(deployment, args.output))


def set_endpoints(args: argparse.Namespace, client: OperatorClient) -> Result:
    """Replace a deployment's endpoints."""
    request = pb.SetEndpointsRequest(id=args.id, endpoints=endpoints(args))
    return Result(render.deployment(client.call("SetEndpoints", request), args.output))


def delete_deployment(args: argparse.Namespace, client: OperatorClient) -> Result:
    """Forget a scaled-down deployment for good: say which revisions it takes with it
    (a rollback to them is refused from then on) and, on a terminal, ask first."""
    deployment = client.call("GetDeployment", pb.GetDeploymentRequest(id=args.id))
    history = client.call("ListHistory", pb.ListHistoryRequest(service=deployment.service))
    # Revisions whose picture routes to it (its tag listed, weight 0 too): a rollback
    # to one of them is refused once it is gone.
    bound = sorted(
        entry.revision
        for entry in history.entries
        if any(
            b.deployment_id == args.id and b.tag in {w.tag for w in entry.after.weights}
            for b in entry.after.bindings
        )
    )
    several = len(bound) > 1
    lost = (
        f"revision{'s' if several else ''} {', '.join(map(str, bound))} of service "
        f"{deployment.service} route{'' if several else 's'} to it and can no longer be "
        "restored by `traffic rollback --to-revision`"
        if bound
        else "no revision of its service routes to it"
    )
    print(f"deleting deployment {args.id}: {lost}", file=sys.stderr)
    if not args.yes and not client.dry_run and sys.stdin.isatty():
        # The question goes to stderr: stdout is the command's output (`-o json > f`).
        print(f"delete deployment {args.id}? [y/N] ", end="", file=sys.stderr, flush=True)
        try:
            answer = sys.stdin.readline().strip().lower()
        except KeyboardInterrupt:
            answer = ""
        if answer not in ("y", "yes"):  # Enter, Ctrl-D, Ctrl-C: no
            raise CliError(f"not deleted: deployment {args.id} is kept", EXIT_REFUSED)
    request = pb.DeleteDeploymentRequest(id=args.id)
    return Result(render.deployment(client.call("DeleteDeployment", request), args.output))


def register(commands: Commands) -> None:
    """Add ``deployments`` and its subcommands to ``commands``."""
    deployments = group(commands, "deployments", "inspect deployments")
    listing = command(
        deployments, "list", list_deployments, "list deployments", render.READ_OUTPUTS
    )
    listing.add_argument(
        "-A", "--all-services", action="store_true", help="list the deployments of every service"
    )
    _by_id(deployments, "get", get_deployment, "show one deployment")
    set_parser = _by_id(
        deployments, "set-endpoints", set_endpoints, "replace a deployment's endpoints"
    )
    endpoint_option(set_parser)
    wait_options(set_parser)
    deleting = _by_id(deployments, "delete", delete_deployment, "forget a scaled-down deployment")
    dry_run_option(deleting)
    deleting.add_argument(
        "-y", "--yes", action="store_true", help="do not ask on a terminal (scripts never are)"
    )


def _by_id(
    deployments: Commands, name: str, handler: Handler, help_text: str
) -> argparse.ArgumentParser:
    """A command on the one deployment its ``id`` argument names."""
    parser = command(deployments, name, handler, help_text, render.READ_OUTPUTS, service=False)
    parser.add_argument("id")
    return parser
