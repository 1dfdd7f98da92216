"""The native broker driven from an event loop (python/silo/broker.py and
rust/py/completions.rs), in process: answers and errors arrive through the completion queue,
cancellation aborts the native call, and closing is clean. Runs on asyncio's loop and on uvloop
(the server's)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
import uvloop
from helpers import wait_for_gauge
from silo import errors
from silo._native import Broker, Completions
from silo._proto.silo.admin.v1 import GetStatsRequest, Stats
from silo._proto.silo.v1 import (
    EnqueueRequest,
    EnqueueResponse,
    GetJobRequest,
    Job,
    LeaseTasksRequest,
    LeaseTasksResponse,
)
from silo.broker import Broker as NativeBroker
from silo.config import ServeConfig

LOOPS = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}

Scenario = Callable[[NativeBroker], Coroutine[Any, Any, None]]


@pytest.fixture(params=sorted(LOOPS))
def run(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[Scenario], None]:
    """run(scenario): open a broker on a fresh store in a new event loop of the parametrized
    kind, run `scenario(broker)`, close the broker and the loop."""

    def run_scenario(scenario: Scenario) -> None:
        async def main() -> None:
            broker = await NativeBroker.open(ServeConfig(store=str(tmp_path / "store")))
            try:
                await scenario(broker)
            finally:
                await broker.close()

        with asyncio.Runner(loop_factory=LOOPS[request.param]) as runner:
            runner.run(asyncio.wait_for(main(), 60))

    return run_scenario


def gauges_of(broker: NativeBroker) -> Callable[[], Awaitable[dict[str, int]]]:
    """The broker's gauges (Admin/GetStats), for wait_for_gauge."""

    async def read() -> dict[str, int]:
        return dict(Stats().parse(await broker.call("GetStats", bytes(GetStatsRequest()))).gauges)

    return read


def enqueue_request(job_id: str, queue: str = "q") -> bytes:
    return bytes(EnqueueRequest(id=job_id, queue=queue, payload=b"p"))


def lease_request(*, worker: str, wait_ms: int, queue: str = "q") -> bytes:
    return bytes(LeaseTasksRequest(worker_id=worker, max_tasks=5, queues=[queue], wait_ms=wait_ms))


def test_replies_are_the_encoded_answers(run: Callable[[Scenario], None]) -> None:
    async def scenario(broker: NativeBroker) -> None:
        reply = await broker.call("Enqueue", enqueue_request("a"))
        assert EnqueueResponse().parse(reply).id == "a"
        job = Job().parse(await broker.call("GetJob", bytes(GetJobRequest(id="a"))))
        assert job.id == "a"
        assert job.payload == b"p"

    run(scenario)


def test_errors_are_raised_as_silo_errors(run: Callable[[Scenario], None]) -> None:
    async def scenario(broker: NativeBroker) -> None:
        with pytest.raises(errors.JobNotFound):
            await broker.call("GetJob", bytes(GetJobRequest(id="missing")))
        with pytest.raises(errors.InvalidArgument, match="malformed protobuf"):
            await broker.call("Enqueue", b"\xff\xff\xff")
        await broker.call("Enqueue", enqueue_request("twice"))
        with pytest.raises(errors.JobAlreadyExists):
            await broker.call("Enqueue", enqueue_request("twice"))

    run(scenario)


def test_many_calls_in_flight_are_all_answered(run: Callable[[Scenario], None]) -> None:
    async def scenario(broker: NativeBroker) -> None:
        ids = [f"j{i}" for i in range(300)]
        replies = await asyncio.gather(*(broker.call("Enqueue", enqueue_request(i)) for i in ids))
        assert [EnqueueResponse().parse(r).id for r in replies] == ids
        lookups: list[Awaitable[bytes]] = [
            broker.call("GetJob", bytes(GetJobRequest(id=i))) for i in [*ids, "missing"]
        ]
        results = await asyncio.gather(*lookups, return_exceptions=True)
        assert [Job().parse(r).id for r in results[:-1]] == ids  # type: ignore[arg-type]
        assert isinstance(results[-1], errors.JobNotFound)

    run(scenario)


def test_cancelled_long_poll_leases_nothing(run: Callable[[Scenario], None]) -> None:
    async def scenario(broker: NativeBroker) -> None:
        poll = asyncio.ensure_future(
            broker.call("LeaseTasks", lease_request(worker="gone", wait_ms=30_000))
        )
        # Cancelling before the call parks would prove nothing.
        await wait_for_gauge(gauges_of(broker), "lease_waiters", lambda n: n == 1, what="park")
        assert not poll.done()
        poll.cancel()
        with pytest.raises(asyncio.CancelledError):
            await poll
        await wait_for_gauge(gauges_of(broker), "lease_waiters", lambda n: n == 0, what="unpark")
        await broker.call("Enqueue", enqueue_request("after"))
        reply = await broker.call("LeaseTasks", lease_request(worker="here", wait_ms=5_000))
        assert [t.job_id for t in LeaseTasksResponse().parse(reply).tasks] == ["after"]

    run(scenario)


def test_a_call_cancelled_at_once_leaves_later_calls_working(
    run: Callable[[Scenario], None],
) -> None:
    async def scenario(broker: NativeBroker) -> None:
        call = asyncio.ensure_future(broker.call("Enqueue", enqueue_request("maybe")))
        await asyncio.sleep(0)  # let the call start
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        # Its answer (if the work finished first) is dropped, never set on the cancelled future
        # (pytest would report that as an unraisable InvalidStateError).
        reply = await broker.call("Enqueue", enqueue_request("next"))
        assert EnqueueResponse().parse(reply).id == "next"

    run(scenario)


def test_parked_calls_are_answered_by_close_and_later_calls_fail(
    run: Callable[[Scenario], None],
) -> None:
    async def scenario(broker: NativeBroker) -> None:
        poll = asyncio.ensure_future(
            broker.call("LeaseTasks", lease_request(worker="w", wait_ms=30_000))
        )
        await wait_for_gauge(gauges_of(broker), "lease_waiters", lambda n: n == 1, what="park")
        await broker.close()
        await asyncio.wait_for(poll, 10)  # answered (empty or an error), not left hanging
        with pytest.raises(errors.StoreUnavailable):
            await broker.call("Enqueue", enqueue_request("late"))
        await broker.close()  # idempotent

    run(scenario)


def test_a_bad_store_fails_to_open(tmp_path: Path) -> None:
    async def main() -> None:
        with pytest.raises(errors.InvalidArgument):
            await NativeBroker.open(ServeConfig(store="bogus://nowhere"))

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


def test_empty_queue_drains_nothing() -> None:
    completions = Completions()
    assert completions.fileno() >= 0
    assert completions.drain() == 0


_KNOWN_SETTINGS = json.loads(ServeConfig(store="memory://").broker_settings())


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ('{"store": "memory://"}', "missing field"),
        ("[1, 2]", "invalid type"),
        ("not json", "expected"),
        (json.dumps({**_KNOWN_SETTINGS, "lease_msec": 5}), "unknown field `lease_msec`"),
    ],
    ids=["missing", "not-an-object", "not-json", "unknown"],
)
def test_the_core_refuses_bad_settings(settings: str, named: str) -> None:
    """The settings object crossing into the core is checked there too (rust/broker.rs)."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        completions = Completions()
        loop.add_reader(completions.fileno(), completions.drain)
        try:
            future: asyncio.Future[Any] = loop.create_future()
            Broker.open(completions, future, settings)
            with pytest.raises(errors.InvalidArgument, match=f"settings: .*{named}"):
                await asyncio.wait_for(future, 30)
        finally:
            loop.remove_reader(completions.fileno())

    asyncio.run(main())
