"""A rollout's abort: from the onset of canary errors to Envoy routing none to the canary.

    python3 bench/rollout_abort.py --runs 20 --interval 2 --json bench/results/rollout_abort.json

One `xdsctl serve`, one real Envoy (SotW, stats sink flushed every second) and two
upstreams, blue and green, for every run, under a paced client load (``--rate``
requests/s, one keep-alive connection, every answer kept with the time it was sent).
Each run starts from blue=100,green=0 with green healthy, starts
``rollout start --to green --steps 20,50,100 --interval I --min-requests 5
--max-error-rate 5%``, and at a random moment inside the first step (20 %) makes
every green request fail (``fail_every = 1``): the onset. Then it watches Envoy's
admin ``/config_dump`` until green's route weight is 0 (the weights are back) and,
beside it, ``rollout status`` until it says aborted. If the onset came too late in
the step for its errors to reach the first judgement (a flush, up to 1 s later, into
a whole second the window covers), that step passes and the next one, at 50 %, aborts.

Per run: onset → abort judged (the abort event's time in the rollout's record),
onset → ``rollout status`` says aborted, onset → Envoy's weights back, and the
clients' errors among the requests sent between the onset and the weights back,
with how many of those went to green (every error is green's, so errors ≤ green's
requests, a share of the window's requests bounded by the canary's share).
The issue's target: p50 of onset → weights back ≤ interval + one flush (1 s) + 1 s.
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.stack import PacedLoad, Stack, blue_green_stack, wait_until  # noqa: E402

FLUSH_S = 1.0  # Envoy's stats flush interval (the bootstrap's)
SLACK_S = 1.0
FIRST_STEP = 20
STEPS = f"{FIRST_STEP},50,100"


class StatusWatch:
    """``xdsctl rollout status -o json`` in a loop until it says aborted (or stopped)."""

    def __init__(self, stack: Stack) -> None:
        self._stack = stack
        self._stop = threading.Event()
        self.aborted_at: float | None = None  # time.monotonic() the aborted answer came
        self.status: dict[str, Any] | None = None
        self.calls = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            status = _status(self._stack)
            self.calls += 1
            if status["phase"] == "aborted":
                self.aborted_at, self.status = time.monotonic(), status
                return
            if status["phase"] not in ("progressing", "holding"):
                self.status = status
                return

    def start(self) -> StatusWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=70)


def _status(stack: Stack) -> dict[str, Any]:
    result: dict[str, Any] = stack.xdsctl("rollout", "status", "-o", "json").json()
    return result


def _wall(text: str) -> float:
    """A rollout time as ``-o json`` shows it (UTC ISO, ms) in seconds since the epoch."""
    return datetime.datetime.fromisoformat(text).timestamp()


def _green_weight(stack: Stack, cluster: str) -> int | None:
    """Green's weight in Envoy's live route table (None: the table is not there yet)."""
    weights = stack.envoys[0].route_weights()
    for clusters in weights.values():
        return clusters.get(cluster, 0)
    return None


def _clusters_by_tag(stack: Stack) -> dict[str, str]:
    deployments = stack.xdsctl("deployments", "list", "-o", "json").json()
    return {d["tag"]: f"{d.get('service', 'default')}_{d['id']}" for d in deployments}


def reset(stack: Stack, green_cluster: str) -> None:
    """Green healthy and at 0 again, Envoy routing all to blue."""
    stack.upstreams["green"].fail_every = 0
    assert stack.server is not None
    moved = stack.server.xdsctl("traffic", "set", "--tags", "blue=100,green=0")
    if moved.returncode != 0:
        stack.xdsctl("traffic", "set", "--tags", "blue=100,green=0", "--force")
    wait_until(lambda: _green_weight(stack, green_cluster) == 0, what="green at 0 in Envoy")


def one_run(
    stack: Stack, load: PacedLoad, interval: float, green_cluster: str, rng: random.Random
) -> dict[str, Any]:
    green = stack.upstreams["green"]
    started = stack.xdsctl(
        "rollout", "start", "--to", "green", "--steps", STEPS, "--interval", f"{interval:g}s",
        "--min-requests", "5", "--max-error-rate", "5%", "-o", "json",
    ).json()  # fmt: skip
    step_began = time.monotonic()
    assert started["weights"] == {"blue": 100 - FIRST_STEP, "green": FIRST_STEP}, started
    # A random moment inside the first step (the step counts from the start's commit).
    delay = rng.uniform(0.0, interval)
    wait_until(
        lambda: _green_weight(stack, green_cluster) == FIRST_STEP, what="green at 20 in Envoy"
    )
    routed_at = time.monotonic()
    time.sleep(max(0.0, step_began + delay - time.monotonic()))
    green.fail_every = 1
    onset, onset_wall = time.monotonic(), time.time()
    watch = StatusWatch(stack).start()
    try:
        highest = FIRST_STEP
        deadline = onset + 4 * interval + 20
        while True:
            weight = _green_weight(stack, green_cluster)
            now = time.monotonic()
            if weight == 0:
                back = now
                break
            if weight is not None:
                highest = max(highest, weight)
            if now > deadline:
                took = now - onset
                raise AssertionError(f"Envoy still routes {weight} to green after {took:.1f}s")
            time.sleep(0.005)
        # Only what was sent before the weights were back counts: wait for those answers.
        time.sleep(0.2)
        window = load.between(onset, back)
        watch_deadline = time.monotonic() + 30
        while watch.aborted_at is None and watch.status is None:
            if time.monotonic() > watch_deadline:
                raise AssertionError("rollout status never said aborted")
            time.sleep(0.01)
    finally:
        watch.stop()
    status = watch.status
    assert status is not None and status["phase"] == "aborted", status
    [event] = [e for e in status["events"] if e["phase"] == "aborted"]
    judged = _wall(event["at"]) - onset_wall
    errors = [a for a in window if a.status != 200]
    to_green = [a for a in window if a.upstream == "green"]
    kinds = Counter(str(a.status) if a.status else "no answer" for a in errors)
    first_error = min((a.sent for a in errors), default=None)
    return {
        "onset_into_step_s": round(onset - step_began, 3),
        "envoy_at_step_after_s": round(routed_at - step_began, 3),
        "aborted_at_step": event["step"],
        "green_percent_at_abort": highest,
        "onset_to_abort_judged_s": round(judged, 3),
        "onset_to_status_aborted_s": round((watch.aborted_at or back) - onset, 3),
        "onset_to_weights_back_s": round(back - onset, 3),
        "onset_to_first_client_error_s": (
            None if first_error is None else round(first_error - onset, 3)
        ),
        "requests_in_window": len(window),
        "requests_to_green": len(to_green),
        "errors": len(errors),
        "errors_by_status": dict(kinds),
        "non_green_errors": sum(1 for a in errors if a.upstream != "green"),
        "verdicts": [(v["step"], v["outcome"], v["detail"]) for v in status["verdicts"]],
        "reason": status["reason"],
        "weights_after": status["weights"],
    }


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def measure(runs: int, interval: float, rate: float, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        stack = blue_green_stack(Path(tmp))
        try:
            green_cluster = _clusters_by_tag(stack)["green"]
            with PacedLoad(stack.listen_port, rate) as load:
                time.sleep(1.0)
                for run in range(runs):
                    reset(stack, green_cluster)
                    # Let the last run's errors age out of every window the next judges.
                    time.sleep(interval + FLUSH_S + 0.5)
                    result = one_run(stack, load, interval, green_cluster, rng)
                    results.append(result)
                    print(
                        f"run {run + 1:>2}: onset {result['onset_into_step_s']:.2f}s into "
                        f"step 1, aborted at step {result['aborted_at_step']}; onset → "
                        f"judged {result['onset_to_abort_judged_s']:.2f}s, status "
                        f"{result['onset_to_status_aborted_s']:.2f}s, Envoy "
                        f"{result['onset_to_weights_back_s']:.2f}s; errors "
                        f"{result['errors']}/{result['requests_in_window']} "
                        f"(to green {result['requests_to_green']})",
                        flush=True,
                    )
        finally:
            stack.close()
    back = [r["onset_to_weights_back_s"] for r in results]
    judged = [r["onset_to_abort_judged_s"] for r in results]
    status = [r["onset_to_status_aborted_s"] for r in results]
    errors_total = sum(r["errors"] for r in results)
    window_total = sum(r["requests_in_window"] for r in results)
    green_total = sum(r["requests_to_green"] for r in results)
    target = interval + FLUSH_S + SLACK_S
    p50 = statistics.median(back)
    return {
        "runs": results,
        "interval_s": interval,
        "rate_per_s": rate,
        "steps": STEPS,
        "p50_s": round(p50, 3),
        "p90_s": round(_percentile(back, 0.9), 3),
        "max_s": round(max(back), 3),
        "target_s": target,
        "p50_within_target": p50 <= target,
        "abort_judged_p50_s": round(statistics.median(judged), 3),
        "abort_judged_p90_s": round(_percentile(judged, 0.9), 3),
        "abort_judged_max_s": round(max(judged), 3),
        "status_aborted_p50_s": round(statistics.median(status), 3),
        "status_aborted_max_s": round(max(status), 3),
        "aborted_at_first_step": sum(1 for r in results if r["aborted_at_step"] == 1),
        "errors_total": errors_total,
        "requests_in_window_total": window_total,
        "requests_to_green_total": green_total,
        # Green's share of the window's requests: the errors' share is bounded by it.
        "canary_share": round(green_total / window_total, 4) if window_total else None,
        "error_share": round(errors_total / window_total, 4) if window_total else None,
        "non_green_errors_total": sum(r["non_green_errors"] for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument(
        "--interval", type=float, default=2.0, help="the rollout's --interval, in seconds"
    )
    parser.add_argument("--rate", type=float, default=100.0, help="client requests per second")
    parser.add_argument("--seed", type=int, default=1, help="for the onsets' random moments")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = measure(args.runs, args.interval, args.rate, args.seed)
    print()
    print(
        f"onset → Envoy weights back over {args.runs} runs: p50 {result['p50_s']:.2f}s, "
        f"p90 {result['p90_s']:.2f}s, max {result['max_s']:.2f}s "
        f"(target p50 ≤ interval + flush + 1s = {result['target_s']:.1f}s: "
        f"{'met' if result['p50_within_target'] else 'MISSED'})"
    )
    print(
        f"onset → abort judged: p50 {result['abort_judged_p50_s']:.2f}s, "
        f"p90 {result['abort_judged_p90_s']:.2f}s, max {result['abort_judged_max_s']:.2f}s; "
        f"`rollout status` aborted: p50 {result['status_aborted_p50_s']:.2f}s, "
        f"max {result['status_aborted_max_s']:.2f}s"
    )
    print(
        f"aborted at the first step in {result['aborted_at_first_step']}/{args.runs} runs; "
        f"client errors in the windows {result['errors_total']} of "
        f"{result['requests_in_window_total']} requests ({result['requests_to_green_total']} "
        f"to green: share {result['canary_share']}, errors' share {result['error_share']}); "
        f"errors not from green {result['non_green_errors_total']}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
