"""The bench's ceiling: a Silo server that does no work, on the same stack as `silo serve`.

`python -m silo.bench.noop --listen HOST:PORT` serves silo.v1.Silo (and Admin and Health)
through `silo.server.app.start_server`, the very code `silo serve` runs: grpclib's server with
the coalescing transport, the raw-bytes codec and the same handlers, on uvloop. Only the broker
behind the handlers differs: `NoopBroker` answers every call with a fixed, valid reply, encoded
once, and never loads the native module or a store. What a load generator achieves against it
is what this machine's RPC stack (load generator, loopback, grpclib/h2, handlers) can carry at
that moment; `silo bench` divides Silo's figures by it (BENCHMARKS.md, "Ratios to the ceiling").

Replies:
- Enqueue: one id; ReportTaskOutcome, HeartbeatTask, Cancel, GetJob, the Admin calls: the empty
  message (or a fixed one).
- EnqueueBatch, ReportTaskOutcomes: one OK result per entry of the request, with a fresh id
  each. The entry count is decoded once per request length and the reply kept: a bench batch
  of one size has one length.
- LeaseTasks: `max_tasks` tasks of the first queue asked for, each with a payload of
  --payload-bytes zero bytes, decoded once per distinct request (a worker sends the same one
  again and again). So a worker loop never runs dry: a burn-down against it ends when the
  phase has counted its jobs.
- EnqueueStream: one fixed OK EnqueueResult per request, pushed as the request arrives.
- WorkerSession: one task (as LeaseTasks's) per credit granted, at once, so a session never
  runs dry either; a fixed OK HeartbeatResult or OutcomeResult per heartbeat or outcome. Each
  WorkerMessage is decoded (upb, about a microsecond) to tell the kinds apart.

Why not the real handlers with an empty store: they would measure the native broker too. Why not
a reply that echoes the request: decoding costs per job, which the ceiling must not contain.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from silo.bench._pb import admin_pb2 as apb
from silo.bench._pb import silo_pb2 as pb
from silo.server.streams import StreamApi, frame

if TYPE_CHECKING:
    from silo import _native

__all__ = ["NoopBroker", "main"]

#: Distinct requests (or request lengths) whose replies are kept; beyond that a reply is built
#: per call (correct, just slower).
_CACHE_LIMIT: Final = 4096
#: The lease the tasks claim to hold (the broker's default --lease-ms).
_LEASE_MS: Final = 30_000
#: The job id of every Enqueue reply, shaped as the broker makes them (a hyphenated UUID).
_ID: Final = "0190b8e4-6a5c-7d3e-9f21-4c8a1b2e3d4f"


def _job_id() -> str:
    return str(uuid.uuid4())


class _Replies:
    """Encoded replies built by `make(request)` and kept under `key(request)` (bounded)."""

    def __init__(self, make: Callable[[bytes], bytes], key: Callable[[bytes], bytes | int]) -> None:
        self._make = make
        self._key = key
        self._cache: dict[bytes | int, bytes] = {}

    def __call__(self, request: bytes) -> bytes:
        key = self._key(request)
        reply = self._cache.get(key)
        if reply is None:
            reply = self._make(request)
            if len(self._cache) < _CACHE_LIMIT:
                self._cache[key] = reply
        return reply


def _by_bytes(request: bytes) -> bytes:
    return request


def _by_length(request: bytes) -> int:
    return len(request)


class NoopBroker:
    """A `silo.server.service.BrokerApi` that answers fixed valid replies at once."""

    def __init__(self, *, payload_bytes: int = 16) -> None:
        self._payload = bytes(payload_bytes)
        self._enqueue = bytes(pb.EnqueueResponse(id=_ID).SerializeToString())
        self._heartbeat = bytes(
            pb.HeartbeatTaskResponse(
                lease_expires_at_ms=int(time.time() * 1000) + _LEASE_MS
            ).SerializeToString()
        )
        self._batch = _Replies(self._batch_reply, _by_length)
        self._reports = _Replies(self._reports_reply, _by_length)
        self._lease = _Replies(self._lease_reply, _by_bytes)
        self._stats = bytes(apb.Stats(settings={"broker": "silo.bench.noop"}).SerializeToString())
        self._answers: dict[str, Callable[[bytes], bytes]] = {
            "Enqueue": self._fixed(self._enqueue),
            "EnqueueBatch": self._batch,
            "LeaseTasks": self._lease,
            "HeartbeatTask": self._fixed(self._heartbeat),
            "ReportTaskOutcomes": self._reports,
            "GetStats": self._fixed(self._stats),
        }

    # ------------------------------------------------------------------ reply builders

    def _batch_reply(self, request: bytes) -> bytes:
        n = len(pb.EnqueueBatchRequest.FromString(request).jobs)
        reply = pb.EnqueueBatchResponse()
        add = reply.results.add
        for _ in range(n):
            add(id=_job_id())
        return bytes(reply.SerializeToString())

    def _reports_reply(self, request: bytes) -> bytes:
        n = len(pb.ReportTaskOutcomesRequest.FromString(request).reports)
        reply = pb.ReportTaskOutcomesResponse()
        add = reply.results.add
        for _ in range(n):
            add()
        return bytes(reply.SerializeToString())

    def _lease_reply(self, request: bytes) -> bytes:
        lease = pb.LeaseTasksRequest.FromString(request)
        queue = lease.queues[0] if lease.queues else ""
        expires = int(time.time() * 1000) + _LEASE_MS
        reply = pb.LeaseTasksResponse()
        add = reply.tasks.add
        for _ in range(max(1, lease.max_tasks)):
            add(
                task_id=uuid.uuid4().hex,
                job_id=_job_id(),
                queue=queue,
                priority=50,
                payload=self._payload,
                attempt=1,
                heartbeat_interval_ms=_LEASE_MS // 3,
                lease_expires_at_ms=expires,
                is_last_attempt=True,
            )
        return bytes(reply.SerializeToString())

    # ----------------------------------------------------------------------- BrokerApi

    forwards = False

    async def call(
        self,
        rpc: str,
        request: bytes,
        principal: _native.Principal | None = None,
        metadata: list[tuple[str, bytes]] | None = None,
    ) -> bytes:
        """The fixed reply of `rpc` (an empty message for the RPCs the bench does not use);
        `principal` is ignored (no checks)."""
        reply = self._answers.get(rpc)
        return b"" if reply is None else reply(request)

    def _fixed(self, reply: bytes) -> Callable[[bytes], bytes]:
        return lambda _request: reply

    def stream(
        self,
        rpc: str,
        principal: _native.Principal | None = None,
        metadata: list[tuple[str, bytes]] | None = None,
    ) -> StreamApi:
        """A stream that answers at once (see the module doc); `principal` and `metadata` are
        ignored."""
        if rpc == "EnqueueStream":
            answer = bytes(pb.EnqueueResult(id=_ID).SerializeToString())
            return _NoopStream(lambda _request: [answer])
        return _NoopStream(_NoopSession(self._payload).answer)


class _NoopStream:
    """A `silo.server.streams.StreamApi` whose answers to a request are `answer(request)`,
    ready at once. Its window never fills."""

    def __init__(self, answer: Callable[[bytes], list[bytes]]) -> None:
        self._answer = answer
        self._answers: list[bytes] = []
        self._ready = asyncio.Event()
        self._closed = False

    def push(self, request: bytes) -> bool:
        self._answers.extend(self._answer(request))
        self._ready.set()
        return True

    def wake(self) -> None:
        return None

    async def room(self) -> None:
        return None

    def close(self) -> None:
        self._closed = True
        self._ready.set()

    async def next(self) -> bytes:
        while not self._answers and not self._closed:
            self._ready.clear()
            await self._ready.wait()
        answers, self._answers = self._answers, []
        return frame(answers)

    def abort(self) -> None:
        self.close()


class _NoopSession:
    """The answers of a no-op WorkerSession: tasks for credits, fixed results otherwise."""

    def __init__(self, payload: bytes) -> None:
        expires = int(time.time() * 1000) + _LEASE_MS
        self._task = pb.Task(
            job_id=_ID,
            priority=50,
            payload=payload,
            attempt=1,
            heartbeat_interval_ms=_LEASE_MS // 3,
            lease_expires_at_ms=expires,
            is_last_attempt=True,
        )
        self._heartbeat = bytes(
            pb.ServerMessage(
                heartbeat=pb.HeartbeatResult(lease_expires_at_ms=expires)
            ).SerializeToString()
        )
        self._outcome = bytes(pb.ServerMessage(outcome=pb.OutcomeResult()).SerializeToString())

    def answer(self, request: bytes) -> list[bytes]:
        message = pb.WorkerMessage.FromString(request)
        kind = message.WhichOneof("kind")
        if kind == "open":
            return self._tasks(message.open.credits)
        if kind == "credits":
            return self._tasks(message.credits)
        if kind == "heartbeat":
            return [self._heartbeat]
        if kind == "outcome":
            return [self._outcome]
        return []

    def _tasks(self, n: int) -> list[bytes]:
        out = []
        for _ in range(n):
            self._task.task_id = uuid.uuid4().hex
            out.append(bytes(pb.ServerMessage(task=self._task).SerializeToString()))
        return out


async def _serve(host: str, port: int, payload_bytes: int) -> int:
    from silo.server.app import bind, start_server

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    running = await start_server(NoopBroker(payload_bytes=payload_bytes), bind(host, port))
    # The readiness line `silo serve` prints, which silo.testing.ServerProcess waits for.
    print(f"listening on {running.address}", flush=True)
    await stop.wait()
    await running.drain(grace_s=2.0)
    await running.close(grace_s=1.0)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m silo.bench.noop",
        description="A no-op Silo server on the stack of `silo serve` (the bench's ceiling).",
    )
    parser.add_argument("--listen", default="127.0.0.1:0", metavar="HOST:PORT")
    parser.add_argument("--payload-bytes", type=int, default=16, metavar="N")
    args = parser.parse_args(argv)
    host, _, port = str(args.listen).rpartition(":")
    # The event loop `silo serve` runs on (silo/cli.py).
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_serve(host.strip("[]"), int(port), args.payload_bytes))


if __name__ == "__main__":
    raise SystemExit(main())
