"""EnqueueStream (docs/api.md#enqueuestream): every request answered in order once durable, a bad
request failing alone, durability across kill -9, backpressure (bounded server memory for a
client that does not read), a stream cancelled mid-way, and shutdown."""

from __future__ import annotations

import asyncio
import signal

from conftest import MakeServer, Namespace
from grpclib.client import Channel
from grpclib.config import Configuration
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from helpers import admin_gauges, expect_status, get_job, wait_for_gauge
from silo._proto.silo.admin.v1 import AdminStub, GetStatsRequest
from silo._proto.silo.v1 import (
    ConcurrencyLimit,
    EnqueueRequest,
    EnqueueResult,
    GetJobRequest,
    JobStatus,
    SiloStub,
)
from stream_client import (
    ENQUEUE_STREAM,
    end_status,
    enqueue_stream,
    raw_stream,
    recv,
)

OK, INVALID_ARGUMENT, ALREADY_EXISTS = 0, 3, 6


async def test_answers_come_in_order_with_many_in_flight(
    shared_stub: SiloStub, ns: Namespace
) -> None:
    ids = [f"job-{i:04d}" for i in range(500)]
    async with enqueue_stream(shared_stub) as stream:
        # Everything is sent before anything is read: all 500 are in flight at once.
        for job_id in ids:
            await stream.send_message(
                EnqueueRequest(id=job_id, tenant=ns.tenant, queue=ns.queue, payload=b"p")
            )
        await stream.end()
        results = [r async for r in stream]
    assert [(r.code, r.id) for r in results] == [(OK, job_id) for job_id in ids]
    # Generated ids too: one answer per request, in order.
    async with enqueue_stream(shared_stub) as stream:
        for i in range(20):
            await stream.send_message(
                EnqueueRequest(tenant=ns.tenant, queue=ns.queue, priority=i + 1)
            )
        await stream.end()
        generated = [r async for r in stream]
    assert [r.code for r in generated] == [OK] * 20
    for i, r in enumerate(generated):
        job = await get_job(shared_stub, r.id, ns.tenant)
        assert job.priority == i + 1, "the answer belongs to its request"
    job = await get_job(shared_stub, ids[-1], ns.tenant)
    assert (job.status, job.payload) == (JobStatus.PENDING, b"p")


async def test_a_bad_request_fails_alone_and_the_stream_goes_on(
    shared_stub: SiloStub, ns: Namespace
) -> None:
    def job(job_id: str, **fields: object) -> EnqueueRequest:
        return EnqueueRequest(id=job_id, tenant=ns.tenant, queue=ns.queue, **fields)  # type: ignore[arg-type]

    requests = [
        job("good-1"),
        job("bad-priority", priority=101),
        job("x" * 128),
        job("bad-start", start_at_ms=-1),
        job("bad-limit", concurrency_limits=[ConcurrencyLimit(key="", max_concurrency=1)]),
        job("good-2"),
        job("good-1"),
        job("good-3"),
    ]
    async with enqueue_stream(shared_stub) as stream:
        for request in requests:
            await stream.send_message(request)
        # The stream goes on after the bad ones: a request sent after their answers is served.
        results = [await recv(stream) for _ in requests]
        await stream.send_message(job("good-4"))
        results.append(await recv(stream))
        assert await end_status(stream) == (Status.OK, None)
    codes = [(r.code, r.id) for r in results]
    assert codes == [
        (OK, "good-1"),
        (INVALID_ARGUMENT, ""),
        (INVALID_ARGUMENT, ""),
        (INVALID_ARGUMENT, ""),
        (INVALID_ARGUMENT, ""),
        (OK, "good-2"),
        (ALREADY_EXISTS, ""),
        (OK, "good-3"),
        (OK, "good-4"),
    ]
    fields = [r.message.split(":")[0] for r in results[1:5]]
    assert fields == ["priority", "id", "start_at_ms", "concurrency_limits[0].key"]
    for bad in ["bad-priority", "bad-start", "bad-limit"]:
        await expect_status(
            shared_stub.get_job(GetJobRequest(id=bad, tenant=ns.tenant)), Status.NOT_FOUND
        )


async def test_a_message_that_does_not_decode_fails_alone(shared_server, ns: Namespace) -> None:
    good = EnqueueRequest(id="after-junk", tenant=ns.tenant, queue=ns.queue)
    async with raw_stream(shared_server.host, shared_server.port, ENQUEUE_STREAM) as stream:
        await stream.send_message(b"\xff\xff\xff not protobuf")
        await stream.send_message(bytes(good))
        first = EnqueueResult.parse(await recv(stream))
        second = EnqueueResult.parse(await recv(stream))
        assert await end_status(stream) == (Status.OK, None)
    assert first.code == INVALID_ARGUMENT and first.message.startswith("request:"), first
    assert (second.code, second.id) == (OK, "after-junk")


async def test_an_empty_stream_ends_ok(shared_stub: SiloStub) -> None:
    async with enqueue_stream(shared_stub) as stream:
        assert await end_status(stream) == (Status.OK, None)


async def test_every_answered_job_survives_kill9(make_server: MakeServer) -> None:
    server = await make_server()
    stub = server.stub()
    answered: list[str] = []
    ids = [f"durable-{i:05d}" for i in range(3000)]
    async with enqueue_stream(stub) as stream:

        async def send_all() -> None:
            for job_id in ids:
                await stream.send_message(EnqueueRequest(id=job_id, tenant="d", payload=b"x"))

        sender = asyncio.ensure_future(send_all())
        try:
            while len(answered) < 300:
                result = await recv(stream)
                assert result.code == OK, result
                answered.append(result.id)
            # Killed right after an answer, with many requests still in flight.
            server.kill9()
        finally:
            sender.cancel()
    assert answered == ids[: len(answered)], "answers come in order"
    await server.arestart()
    stub = server.stub()
    for job_id in answered:
        job = await get_job(stub, job_id, "d", attempts=False)
        assert (job.id, job.payload) == (job_id, b"x")


async def test_a_client_that_does_not_read_holds_bounded_server_memory(
    make_server: MakeServer,
) -> None:
    # The client below leaves the server's answers unread on purpose until the window fills;
    # how long that takes depends on the machine. The transport resets a stream whose client
    # does not read an answer within --request-timeout-ms (test_limits.py tests that), so
    # here it is longer than any run of this test: only flow control holds the stream back.
    server = await make_server(extra_args=["--request-timeout-ms", str(3_600_000)])
    admin = AdminStub(server.channel())
    gauges = admin_gauges(admin)
    rss_before = (await admin.get_stats(GetStatsRequest())).rss_bytes
    payload = bytes(2048)
    total = 100_000  # 205 MB of requests in all
    # The client reads nothing, and its receive window is HTTP/2's smallest (64 KiB): once the
    # answers fill it, the server's writer waits, its window of requests fills and it stops
    # reading; then the client's own sends wait on the server's receive window.
    config = Configuration(http2_connection_window_size=65_535, http2_stream_window_size=65_535)
    sent = 0
    async with raw_stream(server.host, server.port, ENQUEUE_STREAM, config=config) as stream:
        request = bytes(EnqueueRequest(tenant="bp", queue="bp", payload=payload))

        async def send_all() -> None:
            nonlocal sent
            for _ in range(total):
                await stream.send_message(request)
                sent += 1
            await stream.end()

        sender = asyncio.ensure_future(send_all())
        peak = await wait_for_gauge(
            gauges,
            "stream_requests",
            lambda n: n >= 1000,
            what="the stream's window never filled",
            timeout=120,  # a deadline for a busy machine, not a measure of speed
        )
        stats = await admin.get_stats(GetStatsRequest())
        assert stats.gauges["stream_requests"] <= 1000, "the window bounds what a stream holds"
        assert not sender.done() and sent < total, "the client is held back"
        grown = stats.rss_bytes - rss_before
        assert grown < 100 * 2**20, f"server RSS grew by {grown / 2**20:.0f} MB"
        # Reading the answers lets everything through, in order and all OK.
        count = 0
        while (raw := await asyncio.wait_for(stream.recv_message(), 120)) is not None:
            assert EnqueueResult.parse(raw).code == OK
            count += 1
        await sender
    assert (count, peak) == (total, 1000)
    await wait_for_gauge(gauges, "streams", lambda n: n == 0, what="the stream stayed open")


async def test_a_cancelled_stream_keeps_what_it_answered_and_nothing_half(
    shared_server, ns: Namespace
) -> None:
    stub = SiloStub(channel := Channel(shared_server.host, shared_server.port))
    admin = AdminStub(channel)
    ids = [f"c-{i:04d}" for i in range(2000)]
    metadata = {"k": "v"}
    try:
        answered: list[str] = []
        async with enqueue_stream(stub) as stream:
            for job_id in ids:
                await stream.send_message(
                    EnqueueRequest(
                        id=job_id,
                        tenant=ns.tenant,
                        queue=ns.queue,
                        payload=job_id.encode(),
                        metadata=metadata,
                    )
                )
            while len(answered) < 100:
                answered.append((await recv(stream)).id)
            await stream.cancel()
        assert answered == ids[:100]
        stored = 0
        for job_id in ids:
            try:
                job = await get_job(stub, job_id, ns.tenant, attempts=False)
            except GRPCError as exc:
                assert exc.status is Status.NOT_FOUND
                assert job_id not in answered, f"answered {job_id} is missing"
                continue
            stored += 1
            # Stored means whole: the record, its payload and metadata, and its queue entry.
            assert (job.payload, job.metadata, job.status) == (
                job_id.encode(),
                metadata,
                JobStatus.PENDING,
            )
        assert stored >= len(answered)
        await wait_for_gauge(
            admin_gauges(admin), "stream_requests", lambda n: n == 0, what="requests stayed held"
        )
    finally:
        channel.close()


async def test_sigterm_ends_an_open_stream_ok_after_answering_what_it_read(
    make_server: MakeServer,
) -> None:
    server = await make_server()
    stub = server.stub()
    ids = [f"t-{i:03d}" for i in range(200)]
    async with enqueue_stream(stub) as stream:
        await stream.send_message(EnqueueRequest(id="before", tenant="s"))
        assert (await recv(stream)).id == "before"
        for job_id in ids:
            await stream.send_message(EnqueueRequest(id=job_id, tenant="s"))
        server.send_signal(signal.SIGTERM)
        # The server stops reading, answers what it read and ends the stream OK.
        answers = []
        while (result := await asyncio.wait_for(stream.recv_message(), 30)) is not None:
            answers.append(result)
        status = await end_status(stream)
    assert status == (Status.OK, None)
    assert [(r.code, r.id) for r in answers] == [(OK, job_id) for job_id in ids[: len(answers)]]
    assert server.wait(30) == 0
    await server.arestart()
    stub = server.stub()
    for job_id in ["before", *(r.id for r in answers)]:
        assert (await get_job(stub, job_id, "s", attempts=False)).id == job_id
