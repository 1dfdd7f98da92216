"""`silo.open` -> `silo.Broker` (python/silo/broker.py) in this process: a second open of the
same store fences the first (a clear error, nothing acknowledged lost), `broker.serve()` serves
gRPC to other processes, and the sync facade and the test helpers stand on it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
import silo
from silo import JobStatus
from test_worker import add


async def test_a_second_open_fences_the_first(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    first = await silo.open(store)
    ids = [await first.enqueue(queue="q", payload=f"{i}".encode()) for i in range(20)]
    second = await silo.open(store)
    try:
        await asyncio.wait_for(first.wait_fenced(), 30)
        with pytest.raises(silo.StoreUnavailable, match=r"fenced|newer|closed|unavailable"):
            await first.enqueue(queue="q")
        for i, job_id in enumerate(ids):
            job = await second.get_job(id=job_id)
            assert (job.status, job.payload) == (JobStatus.PENDING, f"{i}".encode())
        await second.enqueue(queue="q")  # the new owner serves
    finally:
        await first.close()
        await second.close()


async def test_an_embedded_broker_serves_grpc(tmp_path: Path) -> None:
    async with await silo.open(str(tmp_path / "store")) as broker:
        server = await broker.serve("127.0.0.1:0")
        async with await silo.connect(server.address) as client:
            job_id = await client.enqueue(queue="q", payload=b"over grpc")
            job = await broker.get_job(id=job_id)
            assert job.payload == b"over grpc"
    # close() stopped the server: the address answers no more.
    async with await silo.connect(server.address, timeout=5) as client:
        with pytest.raises(silo.Unavailable):
            await client.get_job(id=job_id)


async def test_drain_runs_due_tasks_inline(silo_broker: silo.Broker) -> None:
    first = await add.enqueue(silo_broker, 1, 2)
    second = await add.enqueue(silo_broker, 3, 4)
    later = await add.enqueue(silo_broker, 5, 6, _delay=3600)
    assert await silo.testing.drain(silo_broker, tasks=[add]) == 2
    assert first.outcome(await first.job()) == 3
    assert second.outcome(await second.job()) == 7
    assert (await later.job()).status is JobStatus.SCHEDULED
    assert await silo.testing.drain(silo_broker, tasks=[add]) == 0


def test_silo_testing_brings_the_fixture_where_plugins_do_not_load_by_themselves(
    tmp_path: Path,
) -> None:
    """With entry-point plugins off (`-p no:silo`), `pytest_plugins = ["silo.testing"]` gives a
    user's tests the `silo_broker` fixture; without it the fixture is missing."""
    from silo import pytest_plugin
    from silo.testing import silo_broker

    assert silo_broker is pytest_plugin.silo_broker and "silo_broker" in dir(silo.testing)
    (tmp_path / "test_user.py").write_text(
        "import silo\n"
        "async def test_it(silo_broker: silo.Broker) -> None:\n"
        "    job_id = await silo_broker.enqueue(queue='q')\n"
        "    assert (await silo_broker.get_job(id=job_id)).queue == 'q'\n"
    )
    run = [sys.executable, "-m", "pytest", "-q", "-p", "no:silo", "-p", "no:cacheprovider"]
    run += ["-o", "asyncio_mode=auto", "test_user.py"]
    without = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert without.returncode == 1 and "fixture 'silo_broker' not found" in without.stdout
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["silo.testing"]\n')
    with_it = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert with_it.returncode == 0 and "1 passed" in with_it.stdout, with_it.stdout


def test_the_sync_facade(tmp_path: Path) -> None:
    with silo.sync.open(str(tmp_path / "store")) as api:
        job_id = api.enqueue(queue="q", payload=b"sync")
        assert api.get_job(id=job_id).payload == b"sync"
        handle = api.enqueue_task(add, 20, 22)
        [task] = api.lease_tasks(worker_id="w", queues=["q"])
        assert task.job_id == job_id
        with pytest.raises(silo.JobNotFound):
            api.get_job(id="missing")
        assert api.run(silo.testing.drain(api.api, tasks=[add])) == 1
        assert handle.handle.outcome(handle.job()) == 42
