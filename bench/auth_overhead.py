"""Operator API: what authentication costs per call (open, token, TLS + token, mTLS).

    python3 bench/auth_overhead.py --calls 2000 --writes 200 --rounds 3 \\
        --json bench/results/auth_overhead.json

Four modes, each its own `xdsctl serve` (SQLite in a temporary directory,
free loopback ports) with the same world (two deployments of ``default``):

- ``open``: no token exists, every caller is admin;
- ``token``: an admin token created while open, then sent on every call
  (``authorization: Bearer TOKEN``), plaintext;
- ``tls+token``: the same over TLS (``--api-tls-cert``/``--api-tls-key``);
- ``mtls``: TLS with client certificates (``--api-client-ca``), the client's
  subject mapped to admin by ``--api-cert-role``; no token.

Each round starts four fresh servers, one per mode, side by side, and calls
each on one reused channel: after ``--warmup`` untimed reads and a few untimed
writes, ``--calls`` sequential unary GetTraffic calls, then ``--writes``
sequential SetTraffic calls alternating the weights (a write made with a
token also checks, inside its transaction, that the token still exists). The
modes take turns in SLICES slices, the order rotating, so that on a shared
machine whose speed drifts from second to second (hypervisor steal) every
mode sees the same moments. Latency is per call as the client sees it; server
CPU per call is from /proc (10 ms resolution). The summary is the median of
the per-round figures; each mode's ratio to ``open`` is the median of the
per-round ratios. The write rate limit is lifted (it applies the same to
every mode, and would otherwise refuse long runs).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.envoy_latency import _percentile  # noqa: E402
from bench.fleet import _proc_stat, free_port, serve_command  # noqa: E402
from xds_server.heap import SETTLE_SECONDS  # noqa: E402
from xds_server.testing import wait_for_readyz  # noqa: E402
from xds_server.v1 import operator_pb2 as pb  # noqa: E402
from xds_server.v1 import operator_pb2_grpc  # noqa: E402

MODES = ("open", "token", "tls+token", "mtls")
SERVICE = "default"
CLIENT_SUBJECT = "CN=bench,O=ops"
# How the history names the caller in each mode (open: only the peer address).
ACTOR_PREFIX = {
    "open": None,
    "token": "token:bench ",
    "tls+token": "token:bench ",
    "mtls": f"cert:{CLIENT_SUBJECT} ",
}
WRITE_WARMUP = 20
# Each round's calls to a mode are made in this many slices, the modes taking turns.
SLICES = 20
# Lifts the per-identity write rate (default 100/s after a burst of 1,000).
UNLIMITED_WRITES = ("--api-write-rate", "1000000", "--api-write-burst", "1000000")


@dataclass(frozen=True)
class Pki:
    """The CA, the API's server certificate (127.0.0.1) and the client's (CLIENT_SUBJECT)."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_pki(directory: Path) -> Pki:
    # The test suite's certificate maker (needs `cryptography`, a dev dependency),
    # imported here like fleet.py's PostgreSQL helper.
    from tests.support.certs import CertificateAuthority

    ca = CertificateAuthority(directory, "bench")
    server = ca.issue("api", "xds-api", dns=("localhost",), ips=("127.0.0.1",))
    client = ca.issue("client", "bench", organization="ops")
    return Pki(ca.cert, server.cert, server.key, client.cert, client.key)


def _server_flags(mode: str, pki: Pki) -> list[str]:
    if mode in ("open", "token"):
        return []
    flags = ["--api-tls-cert", str(pki.server_cert), "--api-tls-key", str(pki.server_key)]
    if mode == "mtls":
        flags += ["--api-client-ca", str(pki.ca), "--api-cert-role", f"{CLIENT_SUBJECT}=admin"]
    return flags


def _channel(mode: str, pki: Pki, address: str) -> grpc.Channel:
    if mode in ("open", "token"):
        return grpc.insecure_channel(address)
    client = mode == "mtls"
    credentials = grpc.ssl_channel_credentials(
        root_certificates=pki.ca.read_bytes(),
        private_key=pki.client_key.read_bytes() if client else None,
        certificate_chain=pki.client_cert.read_bytes() if client else None,
    )
    return grpc.secure_channel(address, credentials)


def _weights(i: int) -> list[pb.TagWeight]:
    """Alternating 90/10 and 10/90: every write is a real change."""
    blue = 90 if i % 2 else 10
    return [pb.TagWeight(tag="blue", weight=blue), pb.TagWeight(tag="green", weight=100 - blue)]


def _check_mode(
    stub: operator_pb2_grpc.OperatorStub, mode: str, metadata: tuple[tuple[str, str], ...]
) -> None:
    """The server really authenticates as ``mode`` says: the setup's last change is
    recorded under the expected identity, and a call without a token is refused."""
    [entry] = stub.ListHistory(
        pb.ListHistoryRequest(service=SERVICE, limit=1), timeout=10, metadata=metadata
    ).entries
    prefix = ACTOR_PREFIX[mode]
    if prefix is None:
        assert not entry.actor.startswith(("token:", "cert:")), entry.actor
        return
    assert entry.actor.startswith(prefix), f"{mode}: the change was made by {entry.actor}"
    if metadata:
        try:
            stub.GetTraffic(pb.GetTrafficRequest(service=SERVICE), timeout=10)
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED, error  # type: ignore[attr-defined]
        else:
            raise AssertionError(f"{mode}: a call without the token was let in")


class Server:
    """One `xdsctl serve` in ``mode``, set up, with the client's one channel to it."""

    def __init__(self, mode: str, pki: Pki, workdir: Path) -> None:
        self.mode = mode
        api, xds = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
        command = serve_command(workdir, api, xds, *UNLIMITED_WRITES, *_server_flags(mode, pki))
        metrics = command[command.index("--metrics-listen") + 1]
        log = workdir / "serve.log"
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log.open("wb")
        )
        self.channel: grpc.Channel | None = None
        self.metadata: tuple[tuple[str, str], ...] = ()  # the token, in token modes
        self.writes = 0  # SetTraffic calls so far: each flips the split
        self._get = pb.GetTrafficRequest(service=SERVICE)
        try:
            self._set_up(pki, api, metrics, log)
        except BaseException:
            self.close()
            raise

    def _set_up(self, pki: Pki, api: str, metrics: str, log: Path) -> None:
        """Ready; the admin token (token modes); the world; check the mode is in force."""
        mode = self.mode
        wait_for_readyz(self.process, metrics, log, timeout=30)
        self.channel = _channel(mode, pki, api)
        self.stub = operator_pb2_grpc.OperatorStub(self.channel)
        if "token" in mode:  # made while the server is still open
            made = self.stub.CreateToken(pb.CreateTokenRequest(name="bench", role="admin"))
            self.metadata = (("authorization", f"Bearer {made.token}"),)
        for tag, port in (("blue", 8081), ("green", 8082)):
            endpoint = pb.Endpoint(host="127.0.0.1", port=port)
            request = pb.ApplyRequest(service=SERVICE, deployment_tag=tag, endpoints=[endpoint])
            self.stub.Apply(request, timeout=10, metadata=self.metadata)
        self.write()
        _check_mode(self.stub, mode, self.metadata)

    def read(self) -> None:
        reply = self.stub.GetTraffic(self._get, timeout=10, metadata=self.metadata)
        assert reply.tags, "GetTraffic answered without the deployments set up"

    def write(self) -> None:
        self.writes += 1
        request = pb.SetTrafficRequest(service=SERVICE, weights=_weights(self.writes))
        self.stub.SetTraffic(request, timeout=10, metadata=self.metadata)

    def cpu(self) -> float:
        return _proc_stat(self.process.pid)[0]

    def close(self) -> None:
        if self.channel is not None:
            self.channel.close()
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()


def _interleaved(
    servers: list[Server], call: Callable[[Server], None], count: int, first: int
) -> dict[str, dict[str, float]]:
    """``count`` sequential calls per server, in SLICES slices taken in turn (the order
    rotating from ``first``), so that every mode sees the same moments of the machine.
    Per server: per-call latency (µs), calls/s, server CPU per call (µs)."""
    latencies: dict[str, list[float]] = {s.mode: [] for s in servers}
    busy = dict.fromkeys(latencies, 0.0)
    cpu = dict.fromkeys(latencies, 0.0)
    for piece in range(SLICES):
        size = count * (piece + 1) // SLICES - count * piece // SLICES
        shift = (first + piece) % len(servers)
        for server in servers[shift:] + servers[:shift]:
            cpu0 = server.cpu()
            began = time.perf_counter()
            for _ in range(size):
                t0 = time.perf_counter_ns()
                call(server)
                latencies[server.mode].append((time.perf_counter_ns() - t0) / 1000)
            busy[server.mode] += time.perf_counter() - began
            cpu[server.mode] += server.cpu() - cpu0
    return {
        mode: {
            "p50_us": statistics.median(values),
            "p99_us": _percentile(values, 0.99),
            "calls_per_s": count / busy[mode],
            "server_cpu_us_per_call": 1e6 * cpu[mode] / count,
        }
        for mode, values in latencies.items()
    }


def _settle() -> None:
    """The server collects and freezes its heap once, SETTLE_SECONDS after the last
    change: let that happen between the timed parts, not during them."""
    time.sleep(SETTLE_SECONDS + 0.5)


def _round(
    pki: Pki, workdir: Path, calls: int, writes: int, warmup: int, first: int
) -> dict[str, dict[str, dict[str, float]]]:
    """One round on fresh servers (started from mode ``first`` on): per mode, the read
    and write figures."""
    with contextlib.ExitStack() as stack:
        servers = {}
        for mode in MODES[first:] + MODES[:first]:
            directory = workdir / mode.replace("+", "-")
            directory.mkdir()
            servers[mode] = Server(mode, pki, directory)
            stack.callback(servers[mode].close)
        in_order = [servers[mode] for mode in MODES]
        for server in in_order:
            for _ in range(warmup):
                server.read()
            for _ in range(WRITE_WARMUP):
                server.write()
        _settle()
        reads = _interleaved(in_order, Server.read, calls, first)
        written = _interleaved(in_order, Server.write, writes, first)
    return {mode: {"reads": reads[mode], "writes": written[mode]} for mode in MODES}


def measure(
    calls: int, writes: int, rounds: int, warmup: int
) -> dict[str, list[dict[str, dict[str, float]]]]:
    """Per mode, per round: the read and write figures."""
    runs: dict[str, list[dict[str, dict[str, float]]]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        pki = make_pki(Path(tmp))
        for round_ in range(rounds):
            workdir = Path(tmp) / f"round-{round_}"
            workdir.mkdir()
            figures = _round(pki, workdir, calls, writes, warmup, round_ % len(MODES))
            for mode in MODES:
                runs[mode].append(figures[mode])
                r, w = figures[mode]["reads"], figures[mode]["writes"]
                print(
                    f"round {round_ + 1} {mode:<10} read p50 {r['p50_us']:.0f} µs "
                    f"p99 {r['p99_us']:.0f} µs, {r['calls_per_s']:.0f}/s; "
                    f"write p50 {w['p50_us']:.0f} µs p99 {w['p99_us']:.0f} µs",
                    flush=True,
                )
    return runs


def summarise(runs: dict[str, list[dict[str, Any]]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per mode, the medians of the per-round figures, and the medians of the per-round
    ratios to ``open``."""
    medians: dict[str, Any] = {}
    ratios: dict[str, Any] = {}
    for mode, rounds in runs.items():
        medians[mode] = {
            kind: {key: statistics.median(r[kind][key] for r in rounds) for key in rounds[0][kind]}
            for kind in ("reads", "writes")
        }
        ratios[mode] = {
            kind: {
                key: statistics.median(
                    r[kind][key] / o[kind][key]
                    for r, o in zip(rounds, runs["open"], strict=True)
                    if o[kind][key]
                )
                for key in ("p50_us", "p99_us", "calls_per_s")
            }
            for kind in ("reads", "writes")
        }
    return medians, ratios


def _table(medians: dict[str, Any], ratios: dict[str, Any]) -> str:
    header = (
        f"{'mode':<10} {'read p50':>9} {'read p99':>9} {'reads/s':>8} {'÷open p50':>9} "
        f"{'÷open p99':>9} {'cpu/read':>9} │ {'write p50':>9} {'write p99':>9} "
        f"{'÷open p50':>9} {'÷open p99':>9}"
    )
    lines = [header, "─" * len(header)]
    for mode, figures in medians.items():
        reads, writes = figures["reads"], figures["writes"]
        r_ratio, w_ratio = ratios[mode]["reads"], ratios[mode]["writes"]
        lines.append(
            f"{mode:<10} {reads['p50_us']:>9.0f} {reads['p99_us']:>9.0f} "
            f"{reads['calls_per_s']:>8.0f} {r_ratio['p50_us']:>9.2f} {r_ratio['p99_us']:>9.2f} "
            f"{reads['server_cpu_us_per_call']:>9.0f} │ {writes['p50_us']:>9.0f} "
            f"{writes['p99_us']:>9.0f} {w_ratio['p50_us']:>9.2f} {w_ratio['p99_us']:>9.2f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="timed GetTraffic calls")
    parser.add_argument("--warmup", type=int, default=200, help="untimed calls before them")
    parser.add_argument("--writes", type=int, default=200, help="timed SetTraffic calls")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each on fresh servers")
    parser.add_argument(
        "--json", type=Path, default=ROOT / "bench" / "results" / "auth_overhead.json"
    )
    args = parser.parse_args()
    runs = measure(args.calls, args.writes, args.rounds, args.warmup)
    medians, ratios = summarise(runs)
    print(
        f"\nµs per call, medians of {args.rounds} rounds ({args.calls} reads, "
        f"{args.writes} writes per mode and round; ratios: median of per-round ratios):"
    )
    print(_table(medians, ratios))
    document = {
        "calls": args.calls,
        "warmup": args.warmup,
        "writes": args.writes,
        "rounds": args.rounds,
        "runs": runs,
        "medians": medians,
        "ratios_to_open": ratios,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
