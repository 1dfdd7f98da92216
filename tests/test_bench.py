"""Smoke tests of `silo bench`: every scenario runs seconds-long with tiny sizes against a real
broker and prints its summary and valid JSON. Figures are not asserted (the goals and the figures
live in BENCHMARKS.md: a timed assertion on a shared machine only flakes), only that the harness
works and counts what it did."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from silo import bench
from silo.bench._pb import silo_pb2 as pb
from silo.bench.noop import NoopBroker
from silo.bench.options import parse_size, parse_sizes
from silo.testing import ServerProcess

# Tiny sizes: one load-generator process per role, a second or two per phase.
SMOKE_ARGS: dict[str, list[str]] = {
    "enqueue": [
        "--clients",
        "2",
        "--duration",
        "1",
        "--warmup",
        "0.2",
        "--batch-size",
        "10",
        "--batch-clients",
        "2",
    ],
    "burn-down": [
        "--jobs",
        "2000",
        "--enqueue-batch",
        "100",
        "--lease-batch",
        "100",
        "--report-batch",
        "50",
        "--enqueuers",
        "2",
        "--workers",
        "2",
    ],
    "steady": ["--rates", "50,500", "--duration", "1", "--workers", "2"],
    "dispatch": ["--jobs", "20", "--interval-ms", "10", "--workers", "2", "--wait-ms", "2000"],
    "backlog": ["--steps", "0,2k", "--probes", "10", "--settle-s", "0", "--fill-batch", "500"],
    "tenants": [
        "--tenants",
        "20",
        "--jobs-per-tenant",
        "3",
        "--big-tenant-jobs",
        "2000",
        "--small-rate",
        "200",
        "--workers",
        "2",
    ],
    "cost": ["--rate", "100", "--duration", "1", "--workers", "2"],
    "flow": [
        "--rate-jobs",
        "400",
        "--rate-keys",
        "20",
        "--rate-limit",
        "10",
        "--rate-period-ms",
        "500",
        "--waiting-jobs",
        "2000",
        "--waiting-keys",
        "20",
        "--probes",
        "10",
        "--schedules",
        "20",
        "--schedule-s",
        "1.5",
    ],
    "stream-enqueue": ["--clients", "2", "--window", "8", "--duration", "1", "--warmup", "0.2"],
    "python-api": [
        "--jobs",
        "300",
        "--enqueue-jobs",
        "200",
        "--clients",
        "4",
        "--concurrency",
        "20",
        "--no-dramatiq",
    ],
    "session": [
        "--jobs",
        "300",
        "--workers",
        "2",
        "--credits",
        "4",
        "--dispatch-jobs",
        "5",
        "--interval-ms",
        "10",
        "--wait-ms",
        "2000",
        "--ceiling-min-s",
        "0.2",
    ],
    "ops": ["--steps", "200,3k", "--failed", "60", "--probes", "10", "--settle-s", "0"],
    "ceiling": [
        "--clients",
        "2",
        "--duration",
        "1",
        "--warmup",
        "0.2",
        "--per-job-jobs",
        "40",
        "--jobs",
        "2000",
        "--batch-size",
        "10",
        "--batch-clients",
        "2",
        "--ceiling-min-s",
        "0.2",
    ],
    "cluster": [
        "--nodes",
        "1,2",
        "--jobs",
        "2000",
        "--clients",
        "4",
        "--duration",
        "1",
        "--warmup",
        "0.2",
        "--node-ttl",
        "2s",
    ],
}


def run_bench(scenario: str, *extra: str, loadgen: bool = True) -> tuple[dict[str, Any], str]:
    """Run `python -m silo.bench SCENARIO ... --json -`; the parsed JSON and the human output.
    `loadgen=False` for a scenario that drives the broker from its own process (no load
    generator processes to measure)."""
    cmd = [
        sys.executable,
        "-m",
        "silo.bench",
        scenario,
        *SMOKE_ARGS[scenario],
        "--procs",
        "1",
        "--progress-s",
        "0.5",
        "--json",
        "-",
        *extra,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=100)
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}\n{proc.stderr[-4000:]}"
    doc = json.loads(proc.stdout)
    assert f"== silo bench {scenario}: results" in proc.stderr, proc.stderr[-4000:]
    assert doc["scenario"] == scenario
    assert doc["settings"]["cores"] >= 1
    assert doc["results"], "no result rows"
    for row in doc["results"]:
        assert row.get("errors", 0) == 0, row
        assert not loadgen or "loadgen_cores" in row, row
    return doc, proc.stderr


def test_enqueue() -> None:
    doc, out = run_bench("enqueue")
    single, batch = doc["results"]
    assert single["phase"] == "single x2" and single["jobs"] > 0 and single["p99_ms"] > 0
    assert batch["batch"] == 10 and batch["jobs"] >= 10
    assert doc["settings"]["broker"] == "subprocess"
    assert "[enqueue single x2]" in out  # progress lines


def test_burn_down_over_tls_with_a_token(tmp_path: Path) -> None:
    """`--tls-ca` and `--token` (docs/security.md): the load generators speak TLS to a broker
    serving it, with the token of its auth file on every call (no call fails)."""
    from secure import Token, make_pki, write_auth

    (tmp_path / "pki").mkdir()
    pki = make_pki(tmp_path / "pki")
    token = Token("bench", "bench-secret", ["*"], ["admin"])
    auth = write_auth(tmp_path / "auth.toml", [token])
    doc, _ = run_bench(
        "burn-down",
        "--tls-ca",
        str(pki.ca),
        "--token",
        token.secret,
        f"--serve-arg=--tls-cert={pki.server_cert}",
        f"--serve-arg=--tls-key={pki.server_key}",
        f"--serve-arg=--auth-file={auth}",
    )
    rows = {r["phase"]: r for r in doc["results"]}
    assert rows["end to end (batched)"]["jobs"] == 2000


def test_burn_down_batched() -> None:
    doc, _ = run_bench("burn-down")
    rows = {r["phase"]: r for r in doc["results"]}
    assert rows["enqueue (batched)"]["jobs"] == 2000
    assert rows["end to end (batched)"]["jobs"] == 2000
    assert rows["end to end (batched)"]["jobs_per_s"] > 0


def test_burn_down_per_job() -> None:
    doc, _ = run_bench(
        "burn-down", "--per-job", "--jobs", "100", "--enqueuers", "4", "--workers", "4"
    )
    rows = {r["phase"]: r for r in doc["results"]}
    assert rows["end to end (per-job)"]["jobs"] == 100
    assert rows["lease (per-job)"]["call"] == "LeaseTasks max 1"


def test_steady() -> None:
    doc, _ = run_bench("steady")
    for row, rate in zip(doc["results"], (50, 500), strict=True):
        assert row["rate"] == rate
        assert row["completed"] == row["jobs"] == rate  # one second of arrivals
        assert 0 < row["start_p50_ms"] <= row["done_p50_ms"]


def test_stream_enqueue() -> None:
    doc, out = run_bench("stream-enqueue", "--ceiling")
    rows = {r["phase"]: r for r in doc["results"]}
    stream = rows["EnqueueStream x1 window 8"]
    assert stream["jobs"] > 0 and stream["p99_ms"] > 0 and stream["broker_us_per_job"] > 0
    assert stream["x_unary"] == round(
        stream["jobs_per_s"] / rows["single Enqueue x2"]["jobs_per_s"], 3
    )
    assert rows["ceiling: EnqueueStream x1 window 8"]["jobs"] > 0
    names = [s["name"] for s in doc["speedups"]]
    assert "Silo: EnqueueStream x1 window 8 / single Enqueue x2" in names
    assert "streams / unary calls" in out


def test_session() -> None:
    doc, _ = run_bench("session", "--ceiling")
    rows = {r["phase"]: r for r in doc["results"]}
    assert rows["push latency: WorkerSession (1 credit) x2"]["jobs"] == 5
    assert rows["push latency: LeaseTasks(1, wait_ms=2000) x2"]["jobs"] == 5
    unary = "unary: LeaseTasks 4 + ReportTaskOutcome x2"
    session = "WorkerSession credits 4 x2"
    for name in (unary, session):
        assert rows[f"{name}: drain"]["jobs"] == 300
        assert rows[f"{name}: end to end"]["jobs"] == 300
        assert rows[f"ceiling: {name}: drain"]["jobs"] >= 300  # sessions never run dry there
    assert rows[f"{session}: drain"]["x_unary"] > 0
    assert len(doc["speedups"]) == 4


def test_dispatch() -> None:
    doc, _ = run_bench("dispatch")
    [row] = doc["results"]
    assert row["jobs"] == 20
    assert row["from_call_p50_ms"] > 0


def test_backlog() -> None:
    doc, _ = run_bench("backlog")
    first, second = doc["results"]
    assert (first["queued"], second["queued"]) == (0, 2000)
    assert second["broker_rss_mb"] > 0  # /proc of the broker subprocess
    assert second["lease_p50_ms"] > 0


def test_ops() -> None:
    doc, out = run_bench("ops", "--fill-batch", "500")
    small, big = doc["results"]
    assert (small["stored"], big["stored"]) == (200, 3000)
    for probe in ("list_failed", "list_metadata", "list_queue", "list_queues", "get_job"):
        assert small[f"{probe}_p50_ms"] > 0
        assert big[f"{probe}_p99_vs_first"] > 0
    assert "[setup] 60 FAILED jobs" in out


def test_tenants() -> None:
    doc, _ = run_bench("tenants")
    fill, small = doc["results"]
    assert fill["jobs"] == 2000
    assert small["jobs"] == 60
    assert small["start_p50_ms"] > 0


def test_cost() -> None:
    doc, _ = run_bench("cost")
    [row] = doc["results"]
    assert row["completed"] == 100
    if doc["settings"]["admin_stats"] == "available":
        assert row["requests_per_1k_jobs"] is not None
        assert row["usd_per_million_jobs"] >= 0
    else:  # Admin/GetStats not served: figures are n/a, and a note says why
        assert row["usd_per_million_jobs"] is None
        assert any("GetStats" in note for note in doc["notes"])


def test_flow() -> None:
    doc, _ = run_bench("flow")
    rate, empty, waiting, schedules = doc["results"]
    assert rate["jobs"] == 400 and rate["keys_over_envelope"] == 0
    assert rate["rate_ratio_p50"] > 0
    assert empty["lease_p50_ms"] > 0 and waiting["gauge_key_waiters"] == 2000 - 20
    assert schedules["ticks"] > 0 and schedules["samples"] > 0


def test_python_api() -> None:
    doc, _ = run_bench("python-api", loadgen=False)
    rows = {row["phase"]: row for row in doc["results"]}
    assert set(rows) == {
        "enqueue embedded",
        "enqueue grpc",
        "enqueue grpc unary",
        "enqueue_many embedded",
        "enqueue_many grpc",
        "work grpc",
        "work grpc unary",
        "work embedded",
    }
    assert rows["enqueue embedded"]["jobs"] == 200 and rows["enqueue_many grpc"]["jobs"] == 1000
    for phase in ("work grpc", "work grpc unary", "work embedded"):
        assert rows[phase]["jobs"] == 300 and rows[phase]["jobs_per_s"] > 0
    assert rows["work embedded"]["left_ready_running"] == [0, 0]
    assert not any("dramatiq" in note for note in doc["notes"])  # --no-dramatiq: no ratio to it
    assert any("enqueue embedded / enqueue grpc unary" in note for note in doc["notes"])


def test_ceiling_reports_ratios() -> None:
    doc, out = run_bench("ceiling")
    ratios = {r["name"]: r for r in doc["ratios"]}
    assert list(ratios) == [
        "single Enqueue x2",
        "burn-down per-job: enqueue phase",
        "burn-down per-job: drain phase",
        "burn-down per-job: end to end",
        "burn-down batched: enqueue phase",
        "burn-down batched: drain phase",
        "burn-down batched: end to end",
        "EnqueueBatch 10 x2",
    ]
    for r in ratios.values():
        assert r["silo_jobs_per_s"] > 0 and r["ceiling_jobs_per_s"] > 0, r
        assert r["ratio"] == round(r["silo_jobs_per_s"] / r["ceiling_jobs_per_s"], 3), r
    rows = {r["phase"]: r for r in doc["results"]}
    # The ceiling's rows: its own process, so its CPU is accounted like the broker's.
    ceiling = rows["ceiling: end to end (batched)"]
    assert ceiling["jobs"] == 2000 and ceiling["broker_cpu_s"] is not None
    assert rows["ceiling: lease (per-job)"]["jobs"] >= 40  # its leases never run dry
    silo = rows["end to end (batched)"]
    assert silo["jobs"] == 2000
    assert silo["ratio_to_ceiling"] == ratios["burn-down batched: end to end"]["ratio"]
    assert rows["single x2"]["ceiling_jobs_per_s"] == rows["ceiling: single x2"]["jobs_per_s"]
    assert doc["settings"]["ceiling_server"].startswith("-m silo.bench.noop")
    assert "Silo / ceiling" in out


async def test_noop_broker_replies_are_valid_and_sized_by_the_request() -> None:
    broker = NoopBroker(payload_bytes=5)
    lease = pb.LeaseTasksRequest(worker_id="w", max_tasks=7, queues=["q"]).SerializeToString()
    for _ in range(2):  # built once, then kept
        tasks = pb.LeaseTasksResponse.FromString(await broker.call("LeaseTasks", lease)).tasks
        assert len(tasks) == 7
        assert {(t.queue, t.payload, t.attempt) for t in tasks} == {("q", bytes(5), 1)}
        assert len({t.task_id for t in tasks}) == 7
    batch = pb.EnqueueBatchRequest(jobs=[pb.EnqueueRequest(queue="q")] * 3).SerializeToString()
    results = pb.EnqueueBatchResponse.FromString(await broker.call("EnqueueBatch", batch)).results
    assert [r.code for r in results] == [0, 0, 0] and all(r.id for r in results)
    reports = pb.ReportTaskOutcomesRequest(
        reports=[pb.ReportTaskOutcomeRequest(task_id="t", worker_id="w")] * 4
    ).SerializeToString()
    replies = pb.ReportTaskOutcomesResponse.FromString(
        await broker.call("ReportTaskOutcomes", reports)
    )
    assert [r.code for r in replies.results] == [0] * 4
    single = pb.EnqueueRequest(queue="q").SerializeToString()
    assert pb.EnqueueResponse.FromString(await broker.call("Enqueue", single)).id


def unframe(frames: bytes) -> list[bytes]:
    """The messages of gRPC wire frames."""
    out = []
    while frames:
        assert frames[0] == 0, "not compressed"
        size = int.from_bytes(frames[1:5], "big")
        out.append(frames[5 : 5 + size])
        frames = frames[5 + size :]
    return out


async def test_noop_broker_streams_answer_at_once() -> None:
    broker = NoopBroker(payload_bytes=3)
    enqueues = broker.stream("EnqueueStream")
    for _ in range(3):
        assert enqueues.push(pb.EnqueueRequest(queue="q").SerializeToString())
    answers = unframe(await enqueues.next())
    assert [pb.EnqueueResult.FromString(a).code for a in answers] == [0, 0, 0]
    enqueues.close()
    assert await enqueues.next() == b""

    session = broker.stream("WorkerSession")
    session.push(
        pb.WorkerMessage(open=pb.SessionOpen(worker_id="w", credits=2)).SerializeToString()
    )
    session.push(pb.WorkerMessage(credits=1).SerializeToString())
    outcome = pb.ReportTaskOutcomeRequest(task_id="t", result=b"")
    session.push(pb.WorkerMessage(outcome=outcome).SerializeToString())
    answers = unframe(await session.next())
    kinds = [pb.ServerMessage.FromString(a).WhichOneof("kind") for a in answers]
    assert kinds == ["task"] * 3 + ["outcome"]


def test_cluster() -> None:
    doc, _ = run_bench("cluster")
    rows = {r["phase"]: r for r in doc["results"]}
    for nodes in (1, 2):
        assert rows[f"burn-down {nodes} node(s): end to end"]["jobs"] == 2000
        assert rows[f"burn-down {nodes} node(s): end to end"]["broker_us_per_job"] > 0
    direct = rows["single Enqueue x4, 2 node(s), to the owner"]
    assert direct["jobs"] > 0 and direct["forwarded_calls"] == 0, "sent to the owner"
    forwarded = rows["single Enqueue x4, 2 node(s), each call forwarded"]
    assert forwarded["forwarded_calls"] >= forwarded["jobs"] > 0


def test_against_running_broker(shared_server: ServerProcess) -> None:
    doc, _ = run_bench("enqueue", "--target", shared_server.address, "--batch-size", "0")
    assert doc["settings"]["broker"] == "attached"
    assert doc["settings"]["address"] == shared_server.address
    [row] = doc["results"]
    assert row["jobs"] > 0


def test_register_adds_bench_to_a_parser() -> None:
    parser = argparse.ArgumentParser(prog="silo")
    bench.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["bench", "backlog", "--steps", "0,1M,2.5M", "--target", "h:1"])
    assert (args.command, args.scenario, args.target) == ("bench", "backlog", "h:1")
    assert args.steps == [0, 1_000_000, 2_500_000]


@pytest.mark.parametrize(
    ("text", "value"), [("1000", 1000), ("1_000", 1000), ("10k", 10_000), ("1M", 10**6)]
)
def test_parse_size(text: str, value: int) -> None:
    assert parse_size(text) == value


def test_parse_sizes_rejects_garbage() -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_sizes("1,lots")
