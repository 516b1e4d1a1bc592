"""The demo's scale hook: runs one tag's upstream process while its deployment should run.

``xdsctl demo`` adds it as an exec hook on ``deployment.scale``:

    python -m xds_server.demo_scale --tag green --workdir DIR

Each event arrives on stdin. For a deployment of ``--tag`` whose desired state is
``running``, it starts ``python -m xds_server.upstream`` on the deployment's first
endpoint (detached, its output in DIR/upstream-TAG.log) and records its pid in
DIR/DEPLOYMENT.pid; for ``stopped``, it ends that process. Starting what runs, or
stopping what is gone, changes nothing: a redelivered event is harmless. It is the
same shape as the hooks in docs/events.md that scale real orchestrators.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from xds_server.model.events import DEPLOYMENT_SCALE, RUNNING


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def start(workdir: Path, deployment: str, tag: str, endpoint: str) -> str:
    pidfile = workdir / f"{deployment}.pid"
    if pidfile.exists() and _running(int(pidfile.read_text())):
        return f"{tag} ({deployment}) runs already"
    with (workdir / f"upstream-{tag}.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "xds_server.upstream", "--name", tag, "--listen", endpoint],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # outlives this hook, and its timeout
        )
    pidfile.write_text(str(process.pid))
    return f"started {tag} ({deployment}) on {endpoint}, pid {process.pid}"


def stop(workdir: Path, deployment: str, tag: str) -> str:
    pidfile = workdir / f"{deployment}.pid"
    if not pidfile.exists():
        return f"{tag} ({deployment}) is not running"
    pid = int(pidfile.read_text())
    if _running(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    pidfile.unlink()
    return f"stopped {tag} ({deployment}), pid {pid}"


def stop_all(workdir: Path) -> None:
    """End every process this hook started (the demo's Ctrl-C)."""
    for pidfile in workdir.glob("*.pid"):
        stop(workdir, pidfile.stem, "upstream")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tag", required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args()
    event = json.load(sys.stdin)
    data = event["data"]
    if event["type"] != DEPLOYMENT_SCALE or data["tag"] != args.tag:
        print(f"not for {args.tag}: {event['type']}")
        return
    if data["desired"] == RUNNING:
        print(start(args.workdir, data["deployment_id"], args.tag, data["endpoints"][0]))
    else:
        print(stop(args.workdir, data["deployment_id"], args.tag))


if __name__ == "__main__":
    main()
