"""Several replicas on one PostgreSQL database, and moving state between engines.

Real PostgreSQL (tests/support/pg.py), real servers, real Envoys.
"""

from __future__ import annotations

import concurrent.futures
import json
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from envoy.service.status.v3 import csds_pb2, csds_pb2_grpc

from tests.support.processes import ServerProcess, free_port, run_xdsctl
from tests.support.receiver import Receiver
from tests.support.stack import Envoy, Stack, Upstream, wait_until
from xds_server.v1 import operator_pb2 as pb
from xds_server.v1 import operator_pb2_grpc


def _ok(server: ServerProcess, *args: str) -> Any:
    result = server.xdsctl(*args)
    assert result.returncode == 0, f"xdsctl {' '.join(args)}: {result.stderr}"
    return result


@pytest.fixture
def replicas(postgres: Any, tmp_path: Path) -> Any:
    """Two replicas on one fresh database, translating for the same Envoy listener."""
    url = postgres.database()
    listen = ("--envoy-listen", f"127.0.0.1:{free_port()}")
    started = [
        ServerProcess(tmp_path / f"replica-{i}.db", extra_args=listen, store_url=url).start()
        for i in (1, 2)
    ]
    yield started
    for server in started:
        server.stop()


def _routes(envoy: Envoy) -> list[dict[str, Any]]:
    """Envoy's live route tables, as it accepted them.

    (Not their versions: a SotW Envoy reports the set's, a delta one the resource's.)
    """
    return [c["route_config"] for c in envoy.config_dump("dynamic_route_configs")]


def _status_summary(server: ServerProcess) -> str:
    return str(json.loads(_ok(server, "status", "-o", "json").stdout)["summary"])


def _counts(server: ServerProcess) -> tuple[int, int]:
    """(connected, in sync) as --wait's progress line asks for them: the counts alone."""
    with grpc.insecure_channel(server.address) as channel:
        stub = operator_pb2_grpc.OperatorStub(channel)
        reply = stub.GetStatus(pb.GetStatusRequest(counts_only=True), timeout=10)
    assert not reply.nodes
    return reply.connected, reply.in_sync


def _converged(envoys: list[Envoy], weights: dict[str, int]) -> bool:
    """Every Envoy holds the same route tables, with ``weights``."""
    tables = [_routes(envoy) for envoy in envoys]
    live = envoys[0].route_weights().get("default", {})
    routed = {name.split("_", 1)[1]: weight for name, weight in live.items()}
    return all(table == tables[0] for table in tables) and routed == weights


def test_a_change_through_either_replica_reaches_every_envoy(
    replicas: list[ServerProcess], tmp_path: Path
) -> None:
    """Envoy A (SotW) on replica 1, B (delta) on replica 2: identical route tables after
    each change, whichever replica took it."""
    first, second = replicas
    blue, green = Upstream("blue"), Upstream("green")
    envoys = [
        Envoy(tmp_path, first.xds_address, "envoy-a", delta=False),
        Envoy(tmp_path, second.xds_address, "envoy-b", delta=True),
    ]
    try:
        steps: list[tuple[ServerProcess, tuple[str, ...]]] = [
            (first, ("apply", "--deployment-tag", "blue", "--endpoint", blue.endpoint)),
            (second, ("traffic", "set", "--tags", "blue=100")),
            (second, ("apply", "--bluegreen", "--endpoint", green.endpoint)),
            (first, ("traffic", "set", "--tags", "blue=90,green=10")),
            (second, ("traffic", "set", "--tags", "blue=100,green=0", "--mirror", "green=5")),
            (first, ("traffic", "promote")),
        ]
        for server, args in steps:
            _ok(server, *args)
            weights = _weights(server)
            if not any(weights.values()):
                continue  # nothing routed yet: no route table to compare
            wait_until(
                lambda weights=weights: _converged(envoys, weights),
                what=f"both Envoys on {' '.join(args)}",
            )
        # Both replicas answer reads with the same state.
        assert (
            _ok(first, "traffic", "get", "-o", "json").stdout
            == _ok(second, "traffic", "get", "-o", "json").stdout
        )
        # Status and --wait through either replica cover both Envoys.
        for server in replicas:
            wait_until(
                lambda server=server: (
                    _status_summary(server) == "2/2 Envoys in sync with the current config"
                ),
                what="both Envoys in the fleet-wide status",
            )
            assert _counts(server) == (2, 2)  # the other replica's Envoy counted too
        _ok(first, "traffic", "promote", "--wait", "--min-envoys", "2")
        envoys[1].process.send_signal(signal.SIGSTOP)  # B, on replica 2, cannot ACK
        try:
            held = first.xdsctl("traffic", "promote", "--wait", "--timeout", "3s")
            assert held.returncode == 4, held
            assert "envoy-b" in held.stderr and "envoy-a" not in held.stderr, held.stderr
            # B, lagging on the other replica, is connected and not in sync.
            assert _counts(first) == (2, 1)
        finally:
            envoys[1].process.send_signal(signal.SIGCONT)
        wait_until(
            lambda: _status_summary(first) == "2/2 Envoys in sync with the current config",
            what="B catches up",
        )
        # CSDS through replica 1 shows B too, resource contents included.
        with grpc.insecure_channel(first.address) as channel:
            stub = csds_pb2_grpc.ClientStatusDiscoveryServiceStub(channel)
            reply = stub.FetchClientStatus(csds_pb2.ClientStatusRequest(), timeout=10)
        configs = {config.node.id: config for config in reply.config}
        assert set(configs) == {"envoy-a", "envoy-b"}
        for config in configs.values():
            routes = [
                c for c in config.generic_xds_configs if c.type_url.endswith("RouteConfiguration")
            ]
            assert [c.config_status for c in routes] == [csds_pb2.SYNCED], config.node.id
            assert routes[0].xds_config.type_url.endswith("RouteConfiguration")
    finally:
        for envoy in envoys:
            envoy.stop()
        blue.close()
        green.close()


def test_racing_writers_on_two_replicas(replicas: list[ServerProcess]) -> None:
    """200 concurrent `traffic set --if-revision` split across both replicas: one wins per
    revision, history has no gaps; two replicas giving one domain to two services: one wins."""
    first, second = replicas
    _ok(first, "apply", "--deployment-tag", "blue", "--endpoint", "10.0.0.1:80")
    _ok(second, "apply", "--bluegreen", "--endpoint", "10.0.0.2:80")
    # A real change (asking for what it has would make no revision): revision 3. Green
    # at 60 is no racer's weight in the first round, so none of them is "unchanged".
    _ok(first, "traffic", "set", "--tags", "blue=40,green=60")
    stubs = [
        operator_pb2_grpc.OperatorStub(grpc.insecure_channel(server.address)) for server in replicas
    ]

    def attempt(i: int) -> str:
        request = pb.SetTrafficRequest(
            service="default",
            weights=[
                pb.TagWeight(tag="blue", weight=100 - i % 100),
                pb.TagWeight(tag="green", weight=i % 100),
            ],
            if_revision=3 + i // 50,
        )
        try:
            stubs[i % 2].SetTraffic(request, timeout=30)
            return "ok"
        except grpc.RpcError as error:
            return error.code().name

    # Four rounds of 50 racers, each round aiming at the next revision.
    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        outcomes = list(pool.map(attempt, range(200)))
    wins = [i for i, outcome in enumerate(outcomes) if outcome == "ok"]
    assert set(outcomes) <= {"ok", "ABORTED"}, outcomes
    # At most one winner per targeted revision; a round may find its revision
    # already taken only by its own winner, so each round has exactly one.
    assert sorted({3 + i // 50 for i in wins}) == [3, 4, 5, 6] and len(wins) == 4
    history = json.loads(_ok(second, "traffic", "history", "-o", "json").stdout)
    assert sorted(entry["revision"] for entry in history) == list(range(1, 8))

    def claim(args: tuple[ServerProcess, str]) -> int:
        server, service = args
        return server.xdsctl("services", "set", service, "--domain", "shop.example.com").returncode

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        codes = sorted(pool.map(claim, [(first, "alpha"), (second, "beta")]))
    assert codes == [0, 1]
    services = json.loads(_ok(first, "services", "list", "-o", "json").stdout)
    owners = [s["name"] for s in services if "shop.example.com" in s["domains"]]
    assert len(owners) == 1


def test_export_from_sqlite_import_into_postgresql(postgres: Any, tmp_path: Path) -> None:
    """What `traffic get`, `traffic history` and `deployments list` show survives the move."""
    source = ServerProcess(tmp_path / "state.db").start()
    target = ServerProcess(tmp_path / "pg.db", store_url=postgres.database()).start()
    reads = (
        ("traffic", "get", "-o", "json"),
        ("traffic", "history", "-o", "json"),
        ("deployments", "list", "-o", "json"),
        ("services", "list", "-o", "json"),
    )
    try:
        _ok(source, "apply", "--deployment-tag", "blue", "--endpoint", "10.0.0.1:80")
        _ok(source, "apply", "--bluegreen", "--endpoint", "10.0.0.2:80", "--label", "v=2")
        _ok(source, "traffic", "set", "--tags", "blue=90,green=10", "--mirror", "green=2.5")
        _ok(source, "services", "set", "default", "--domain", "shop.example.com")
        _ok(source, "traffic", "promote")
        exported = tmp_path / "state.json"
        exported.write_text(_ok(source, "state", "export").stdout)
        imported = _ok(target, "state", "import", str(exported))
        assert imported.stdout.startswith("imported 1 services, 2 deployments")
        for args in reads:
            assert _ok(target, *args).stdout == _ok(source, *args).stdout, args
        # A second import over it is refused, and changes nothing.
        again = target.xdsctl("state", "import", str(exported))
        assert again.returncode == 1 and "--replace" in again.stderr
        # The imported revisions go on: --if-revision keeps working.
        _ok(target, "traffic", "rollback", "--if-revision", "4")
    finally:
        source.stop()
        target.stop()


APPLIED_COUNTERS = (
    "cluster_manager.cds.update_success",
    "cluster_manager.cluster_added",
    "cluster_manager.cluster_modified",
    "listener_manager.lds.update_success",
    "http.ingress_http.rds.routes.update_success",
)


def _connected_nodes(server: ServerProcess) -> set[str]:
    status = json.loads(_ok(server, "status", "-o", "json").stdout)
    return {n["node_id"] for n in status["nodes"] if n["connected"]}


def _ha_stack(postgres: Any, tmp_path: Path, url: str | None = None) -> tuple[Any, list[Any]]:
    """Two replicas on one database, blue (100) and green (0) registered, one Envoy
    whose bootstrap lists both replicas."""

    url = url or postgres.database()
    stack = Stack(workdir=tmp_path, delta=False)
    listen = ("--envoy-listen", f"127.0.0.1:{stack.listen_port}")
    replicas = [
        ServerProcess(tmp_path / f"replica-{i}.db", extra_args=listen, store_url=url).start()
        for i in (1, 2)
    ]
    first = replicas[0]
    blue, green = stack.upstream("blue"), stack.upstream("green")
    _ok(first, "apply", "--deployment-tag", "blue", "--endpoint", blue.endpoint)
    _ok(first, "apply", "--bluegreen", "--endpoint", green.endpoint)
    _ok(first, "traffic", "set", "--tags", "blue=100,green=0")
    xds = ",".join(server.xds_address for server in replicas)
    stack.envoys.append(Envoy(tmp_path, xds, "envoy-a", delta=False))
    stack.wait_all("blue")
    return stack, replicas


@pytest.mark.parametrize("failure", ["killed", "hung"])
def test_envoy_fails_over_to_the_other_replica(postgres: Any, tmp_path: Path, failure: str) -> None:
    """The replica Envoy uses is killed (-9) or hung (SIGSTOP) under load: zero failed
    requests, nothing applied again after the switch, and a later change reaches it."""
    from tests.support.stack import LoadLoop

    stack, replicas = _ha_stack(postgres, tmp_path)
    [envoy] = stack.envoys
    used = next(s for s in replicas if "envoy-a" in _connected_nodes(s))
    other = next(s for s in replicas if s is not used)
    assert used.process is not None
    try:
        before = envoy.stats()
        with LoadLoop(stack, clients=2) as load:
            if failure == "killed":
                used.signal(signal.SIGKILL)
            else:
                used.process.send_signal(signal.SIGSTOP)
            wait_until(
                lambda: "envoy-a" in _connected_nodes(other),
                timeout=30,
                what="Envoy on the other replica",
            )
            time.sleep(1.0)
            after = envoy.stats()
            for name in APPLIED_COUNTERS:
                assert after[name] == before[name], name
            _ok(other, "traffic", "set", "--tags", "blue=0,green=100")
            stack.wait_all("green")
        assert load.failures() == {}, load.outcomes
    finally:
        if failure == "hung":
            used.process.send_signal(signal.SIGCONT)
        stack.close()
        for server in replicas:
            server.stop()


def _blue_requests(server: ServerProcess, window: str) -> int:
    report = json.loads(_ok(server, "metrics", "--window", window, "-o", "json").stdout)
    blue = next(t for t in report["tags"] if t["tag"] == "blue")
    return int(blue["requests"])


def test_traffic_is_still_counted_after_its_replica_dies(postgres: Any, tmp_path: Path) -> None:
    """Envoy streams its stats to every replica (one sink each), so killing the replica
    it takes config from loses none of its traffic figures on the other."""
    from tests.support.stack import LoadLoop

    stack, replicas = _ha_stack(postgres, tmp_path)
    used = next(s for s in replicas if "envoy-a" in _connected_nodes(s))
    other = next(s for s in replicas if s is not used)
    try:
        with LoadLoop(stack, clients=1):
            for server in replicas:
                wait_until(
                    lambda server=server: _blue_requests(server, "3s") > 0,
                    what="blue's traffic counted on both replicas",
                )
            used.signal(signal.SIGKILL)
            time.sleep(4)
            assert _blue_requests(other, "3s") > 0
    finally:
        stack.close()
        for server in replicas:
            server.stop()


def test_a_rollout_goes_on_when_its_driving_replica_dies(postgres: Any, tmp_path: Path) -> None:
    """Every replica judges due steps; the transaction lets exactly one commit each. Kill
    the one that committed the last step: the other carries on, no step twice."""
    from tests.support.stack import LoadLoop

    stack, replicas = _ha_stack(postgres, tmp_path)
    first = replicas[0]

    def status(server: ServerProcess) -> dict[str, Any]:
        return json.loads(_ok(server, "rollout", "status", "-o", "json").stdout)

    try:
        with LoadLoop(stack, clients=1):
            _ok(
                first, "rollout", "start", "--to", "green", "--steps", "10,30,60,100",
                "--interval", "2s", "--min-requests", "5",
            )  # fmt: skip
            wait_until(lambda: status(first)["step"] == 2, timeout=20, what="step 2")
            driver = next(s for s in replicas if s.log_events("rollout.judged"))
            survivor = next(s for s in replicas if s is not driver)
            driver.signal(signal.SIGKILL)
            wait_until(
                lambda: status(survivor)["phase"] == "completed", timeout=40, what="completed"
            )
        history = json.loads(_ok(survivor, "traffic", "history", "-o", "json").stdout)
        greens = [e["after"]["weights"]["green"] for e in reversed(history) if e.get("reason")]
        assert greens == [10, 30, 60, 100]
    finally:
        stack.close()
        for server in replicas:
            server.stop()


@pytest.mark.postgres
def test_database_outage(tmp_path: Path) -> None:
    """PostgreSQL stops under load: Envoy serves on, a write fails within about 2 s naming
    the database, reads answer from the replica's snapshot; afterwards both replicas
    resync and new changes (endpoints, domains) reach Envoy."""
    from tests.support.pg import PostgresCluster, require_postgres
    from tests.support.stack import LoadLoop

    cluster = PostgresCluster(require_postgres())  # its own: this test stops it
    stack, replicas = _ha_stack(cluster, tmp_path, url=cluster.database())
    first, second = replicas
    try:
        with LoadLoop(stack, clients=2) as load:
            cluster.stop()
            started = time.monotonic()
            refused = first.xdsctl("traffic", "set", "--tags", "blue=0,green=100")
            elapsed = time.monotonic() - started
            assert refused.returncode == 1, refused
            assert "database unavailable" in refused.stderr
            assert elapsed < 5.0, elapsed
            read = _ok(second, "traffic", "get", "-o", "json")
            assert {t["tag"]: t["weight"] for t in json.loads(read.stdout)["tags"]} == {
                "blue": 100,
                "green": 0,
            }
            status = json.loads(_ok(first, "status", "-o", "json").stdout)
            assert status["store"].startswith("unavailable since"), status["store"]
            time.sleep(2.0)
            cluster.start()
            cluster.wait_ready()
            # Both replicas take writes again, and each change reaches the Envoy.
            wait_until(
                lambda: (
                    first.xdsctl("traffic", "set", "--tags", "blue=0,green=100").returncode == 0
                ),
                timeout=30,
                what="writes after the outage",
            )
            stack.wait_all("green")
            moved = stack.upstream("green-2")
            deployment = json.loads(_ok(second, "traffic", "get", "-o", "json").stdout)["tags"]
            green_id = next(t["deployment_id"] for t in deployment if t["tag"] == "green")
            _ok(second, "deployments", "set-endpoints", green_id, "--endpoint", moved.endpoint)
            stack.wait_all("green-2")
        assert load.failures() == {}, load.outcomes
        # A domain change (the load loop, on example.com, is over) propagates too.
        _ok(second, "services", "set", "default", "--domain", "shop.example.com")
        wait_until(
            lambda: (
                stack.request(host="example.com")[0] == 404
                and stack.request(host="shop.example.com") == (200, "green-2")
            ),
            what="the domain change",
        )
        status = json.loads(_ok(first, "status", "-o", "json").stdout)
        assert status["store"] == "available"
    finally:
        stack.close()
        for server in replicas:
            server.stop()
        cluster.close()


def test_a_password_never_goes_on_the_command_line(postgres: Any, tmp_path: Path) -> None:
    """A URL with a password is refused (anyone can read a command line in `ps`), without
    repeating it; a malformed URL is one line, not a traceback."""
    secret = "s3cret-Pa55word"
    url = postgres.database().replace("postgres@", f"postgres:{secret}@")
    refused = run_xdsctl("serve", "--store", url)
    assert refused.returncode == 2
    assert "holds a password" in refused.stderr and "--store-password-file" in refused.stderr
    assert secret not in refused.stderr
    malformed = run_xdsctl("serve", "--store", "postgresql://u@host:port/db")
    assert malformed.returncode == 2 and "Traceback" not in malformed.stderr
    assert len(malformed.stderr.splitlines()) == 1 and "is malformed" in malformed.stderr


def test_the_password_comes_from_a_file(postgres: Any, tmp_path: Path) -> None:
    """--store-password-file logs in a role that needs its password; the password is in
    neither `ps`, the log, nor any output. A file others can read gets a warning."""
    secret = "Fil3-Pa55word"
    url = postgres.password_user("xds_pw", secret)
    wrong = tmp_path / "wrong.pw"
    wrong.write_text("not-it\n")
    wrong.chmod(0o600)
    refused = run_xdsctl("serve", "--store", url, "--store-password-file", str(wrong))
    assert refused.returncode == 1 and "password authentication failed" in refused.stderr
    assert "not-it" not in refused.stderr
    password_file = tmp_path / "store.pw"
    password_file.write_text(secret + "\n")
    password_file.chmod(0o644)
    server = ServerProcess(
        tmp_path / "replica.db",
        store_url=url,
        extra_args=("--store-password-file", str(password_file)),
    ).start()
    try:
        _ok(server, "apply", "--deployment-tag", "blue", "--endpoint", "10.0.0.1:80")
        status = _ok(server, "status", "-o", "json")
        assert secret not in status.stdout + status.stderr
        processes = subprocess.run(["ps", "-ewwo", "args"], capture_output=True, text=True).stdout
        assert "--store-password-file" in processes and secret not in processes
    finally:
        server.stop()
    log = server.log.read_text()
    assert "server.started" in log and secret not in log
    assert f"chmod 600 {password_file}" in log  # the warning (stderr goes to the log)


def test_changes_missed_while_not_listening_are_caught_up(
    replicas: list[ServerProcess], tmp_path: Path
) -> None:
    """Replica 1's notification connection is cut; changes committed through replica 2
    right then (new endpoints, a domain) still reach the Envoy on replica 1: on
    reconnecting, a replica compares sequences and reloads what it missed."""
    first, second = replicas
    blue, moved = Upstream("blue"), Upstream("moved")
    envoy = Envoy(tmp_path, first.xds_address, "envoy-a", delta=False)
    try:
        _ok(second, "apply", "--deployment-tag", "blue", "--endpoint", blue.endpoint)
        wait_until(lambda: _converged([envoy], _weights(second)), what="first config")
        deployment = json.loads(_ok(second, "traffic", "get", "-o", "json").stdout)["tags"][0]
        with psycopg.connect(_database_url(first), autocommit=True) as connection:
            terminated = connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE query = 'LISTEN xds_server_change' AND datname = current_database()"
            ).fetchall()
        assert len(terminated) == 2  # both replicas' listeners
        _ok(
            second,
            "deployments",
            "set-endpoints",
            deployment["deployment_id"],
            "--endpoint",
            moved.endpoint,
        )
        _ok(second, "services", "set", "default", "--domain", "shop.example.com")
        port = int(first.extra_args[1].rsplit(":", 1)[1])  # --envoy-listen
        through_envoy = Stack(workdir=tmp_path, delta=False, listen_port=port)
        wait_until(
            lambda: through_envoy.request(host="shop.example.com") == (200, "moved"),
            timeout=20,
            what="both changes on the Envoy of replica 1",
        )
        assert "store.listen_lost" in first.log.read_text()
    finally:
        envoy.stop()
        blue.close()
        moved.close()


def _weights(server: ServerProcess) -> dict[str, int]:
    tags = json.loads(_ok(server, "traffic", "get", "-o", "json").stdout)["tags"]
    return {t["deployment_id"]: t["weight"] for t in tags}


def _database_url(server: ServerProcess) -> str:
    return server.store_args[1]


def test_a_revoked_token_is_refused_by_every_replica_at_once(
    replicas: list[ServerProcess],
) -> None:
    """Tokens live in the shared store: made on one replica, good on the other; revoked on
    one, refused by the other from the very next call (writes are also re-checked inside
    their transaction, so no change ever commits under a revoked token)."""
    first, second = replicas
    admin = _ok(first, "tokens", "create", "--name", "root", "--role", "admin", "-o", "json")
    first.token = second.token = admin.json()["token"]
    made = _ok(first, "tokens", "create", "--name", "ci-bot", "--role", "operator", "-o", "json")
    operator = {"XDSCTL_TOKEN": made.json()["token"]}
    assert second.xdsctl("services", "list", env=operator).returncode == 0
    applied = second.xdsctl(
        "apply", "--deployment-tag", "blue", "--endpoint", "10.0.0.5:80", env=operator
    )
    assert applied.returncode == 0, applied.stderr

    _ok(first, "tokens", "revoke", "ci-bot", "-o", "json")
    write = second.xdsctl("traffic", "set", "--tags", "blue=100", env=operator)
    read = second.xdsctl("traffic", "get", env=operator)
    assert (write.returncode, read.returncode) == (5, 5), (write.stderr, read.stderr)
    assert "not known" in write.stderr or "revoked" in write.stderr
    assert _ok(second, "traffic", "get", "-o", "json").json()["revision"] == 1


def _replica_name(server: ServerProcess) -> str:
    """How deliveries name a replica (xds_server.hooks.dispatcher.replica_name)."""
    assert server.process is not None
    return f"{socket.gethostname()}:{server.process.pid}"


def _attempts(server: ServerProcess) -> list[dict[str, Any]]:
    return json.loads(
        _ok(server, "hooks", "deliveries", "rx", "--limit", "500", "-o", "json").stdout
    )


def test_each_event_is_delivered_once_by_one_replica(
    replicas: list[ServerProcess], tmp_path: Path
) -> None:
    """50 changes through both replicas: every event delivered exactly once, in commit
    order; then the delivering replica is killed mid-stream and nothing is lost."""
    first, second = replicas
    receiver = Receiver(delay=0.05).start()
    try:
        _ok(
            first,
            "hooks",
            "add",
            "rx",
            "--url",
            receiver.url,
            "--timeout",
            "2s",
            "--events",
            "traffic.changed",
        )
        _ok(first, "apply", "--deployment-tag", "blue", "--endpoint", "10.0.0.5:80")
        _ok(second, "apply", "--bluegreen", "--endpoint", "10.0.0.9:80")
        for green in range(1, 51):
            through = (first, second)[green % 2]
            _ok(through, "traffic", "set", "--tags", f"blue={100 - green},green={green}")
        delivered = receiver.wait_for(52, timeout=60)
        time.sleep(2.0)  # a duplicate would arrive by now
        ids = [d.event["id"] for d in receiver.delivered()]
        assert len(ids) == len(set(ids)) == 52
        greens = [d.event["data"]["after"]["weights"].get("green") for d in delivered]
        assert greens == [None, 0, *range(1, 51)]
        names = {_replica_name(server): server for server in replicas}
        assert {a["replica"] for a in _attempts(first)} <= set(names)

        # Slow answers, 20 more changes; kill -9 whichever replica is delivering.
        receiver.delay = 1.0  # 20 deliveries take 20 s: longer than the 20 commits
        for green in range(51, 71):
            through = (first, second)[green % 2]
            _ok(through, "traffic", "set", "--tags", f"blue={100 - green},green={green}")
        wait_until(lambda: len(receiver.delivered()) >= 56, timeout=30)
        victim = names[_attempts(first)[0]["replica"]]
        survivor = second if victim is first else first
        victim.stop()
        assert len(receiver.delivered()) < 70, "killed mid-stream"
        wait_until(lambda: len({d.event["id"] for d in receiver.delivered()}) >= 72, timeout=60)
        seen: list[int] = []
        for d in receiver.delivered():
            green = d.event["data"]["after"]["weights"].get("green")
            if green is not None and green not in seen:
                seen.append(green)
        assert seen == [0, *range(1, 71)], "first deliveries follow commit order"
        assert _replica_name(survivor) in {a["replica"] for a in _attempts(survivor)[:10]}
    finally:
        receiver.stop()
