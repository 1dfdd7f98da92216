"""The blocking facade of the Silo API, for scripts and web apps that are not async
(docs/python.md#without-asyncio):

    api = silo.sync.connect("127.0.0.1:7070")      # or silo.sync.open("./silo-data")
    job_id = api.enqueue(queue="emails", payload=b"hi")
    handle = api.enqueue_task(send_email, to="a@b.c")
    print(handle.result(timeout=30))
    api.close()

A `SyncApi` owns a private event loop in a background thread; each method runs the `silo.Api`
method of the same name there and blocks until it answers (same arguments, same values, same
errors). It may be called from any thread; calls from several threads run concurrently on
that loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from types import TracebackType
from typing import Any, Concatenate, Generic, ParamSpec, Self, TypeVar

from silo.broker import Broker
from silo.broker import open as open_async
from silo.client import Client
from silo.client import connect as connect_async
from silo.cluster import ClusterClient
from silo.config import DEFAULT_LISTEN, DEFAULT_STORE
from silo.methods import ApiMethods
from silo.tasks import TaskDef, TaskHandle
from silo.types import Job, JobStatus, Schedule

__all__ = ["SyncApi", "SyncTaskHandle", "connect", "open"]

P = ParamSpec("P")
R = TypeVar("R")


class _Blocking(Generic[P, R]):
    """`api.method(...)` of a SyncApi: runs the async method of the same name on the loop."""

    def __init__(self, method: Callable[Concatenate[Any, P], Awaitable[R]]) -> None:
        self._method = method

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, obj: SyncApi | None, owner: type | None = None) -> Callable[P, R]:
        if obj is None:
            raise AttributeError(self._name)
        method = getattr(obj.api, self._name)

        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            result: R = obj.run(method(*args, **kwargs))
            return result

        call.__doc__ = self._method.__doc__
        return call


class SyncApi:
    """A `silo.Api` (`api`: a Broker or a Client) driven from blocking code (see the module
    doc). `close()` closes the API and stops the loop; it is also a context manager."""

    def __init__(self, api: ApiMethods, loop: asyncio.AbstractEventLoop, thread: threading.Thread):
        self.api = api
        self._loop = loop
        self._thread = thread

    def run(self, awaitable: Coroutine[Any, Any, R]) -> R:
        """Run a coroutine on this API's loop and return its result (raise its exception)."""
        return asyncio.run_coroutine_threadsafe(awaitable, self._loop).result()

    enqueue = _Blocking(ApiMethods.enqueue)
    enqueue_many = _Blocking(ApiMethods.enqueue_many)
    cancel = _Blocking(ApiMethods.cancel)
    get_job = _Blocking(ApiMethods.get_job)
    wait_job = _Blocking(ApiMethods.wait_job)
    list_jobs_page = _Blocking(ApiMethods.list_jobs_page)
    restart_job = _Blocking(ApiMethods.restart_job)
    expedite_job = _Blocking(ApiMethods.expedite_job)
    delete_job = _Blocking(ApiMethods.delete_job)
    list_queues = _Blocking(ApiMethods.list_queues)
    cancel_jobs = _Blocking(ApiMethods.cancel_jobs)
    restart_jobs = _Blocking(ApiMethods.restart_jobs)
    delete_jobs = _Blocking(ApiMethods.delete_jobs)
    pause_queue = _Blocking(ApiMethods.pause_queue)
    resume_queue = _Blocking(ApiMethods.resume_queue)
    put_schedule = _Blocking(ApiMethods.put_schedule)
    get_schedule = _Blocking(ApiMethods.get_schedule)
    delete_schedule = _Blocking(ApiMethods.delete_schedule)
    list_schedules_page = _Blocking(ApiMethods.list_schedules_page)
    lease_tasks = _Blocking(ApiMethods.lease_tasks)
    heartbeat_task = _Blocking(ApiMethods.heartbeat_task)
    report_task_outcome = _Blocking(ApiMethods.report_task_outcome)
    report_task_outcomes = _Blocking(ApiMethods.report_task_outcomes)
    get_cluster = _Blocking(ApiMethods.get_cluster)
    get_stats = _Blocking(ApiMethods.get_stats)

    def list_jobs(
        self,
        *,
        tenant: str = "",
        queue: str = "",
        statuses: Sequence[JobStatus] = (),
        page_size: int = 100,
    ) -> Iterator[Job]:
        """Every job matching the filters, newest first, fetched page by page."""
        token = ""
        while True:
            page = self.list_jobs_page(
                tenant=tenant, queue=queue, statuses=statuses, page_size=page_size, page_token=token
            )
            yield from page.jobs
            token = page.next_page_token
            if not token:
                return

    def list_schedules(self, *, tenant: str = "", page_size: int = 100) -> Iterator[Schedule]:
        """Every schedule of the tenant, by name."""
        token = ""
        while True:
            page = self.list_schedules_page(tenant=tenant, page_size=page_size, page_token=token)
            yield from page.schedules
            token = page.next_page_token
            if not token:
                return

    def enqueue_task(
        self, task: TaskDef[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> SyncTaskHandle[R]:
        """`task.enqueue(api, *args, **kwargs)`, blocking; a handle whose `result()` blocks."""
        return SyncTaskHandle(self, self.run(task.enqueue(self.api, *args, **kwargs)))

    def close(self) -> None:
        """Close the API and stop its loop. Idempotent."""
        if self._loop.is_closed():
            return
        if self._thread.is_alive():
            self.run(self.api.close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
        self._loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class SyncTaskHandle(Generic[R]):
    """A `TaskHandle` whose methods block: `id`, `result(timeout)`, `job()`, `cancel()`."""

    def __init__(self, api: SyncApi, handle: TaskHandle[R]) -> None:
        self.handle = handle
        self.id = handle.id
        self._api = api

    def result(self, timeout: float | None = None) -> R:
        """The task's return value; raises JobFailed, JobCancelled, TimeoutError."""
        return self._api.run(self.handle.result(timeout))

    def job(self, *, include_attempts: bool = False) -> Job:
        return self._api.run(self.handle.job(include_attempts=include_attempts))

    def cancel(self) -> None:
        self._api.run(self.handle.cancel())


def _start(make: Callable[[], Awaitable[Broker | Client | ClusterClient]]) -> SyncApi:
    """Start a loop in a daemon thread, make the API on it, wrap both."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="silo-sync", daemon=True)
    thread.start()

    async def made() -> Broker | Client | ClusterClient:
        return await make()

    try:
        api = asyncio.run_coroutine_threadsafe(made(), loop).result()
    except BaseException:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
        raise
    return SyncApi(api, loop, thread)


def open(store: str = DEFAULT_STORE, **settings: Any) -> SyncApi:
    """`silo.open` for blocking code: the broker runs in this process, on the facade's loop."""
    return _start(lambda: open_async(store, **settings))


def connect(address: str | Sequence[str] = DEFAULT_LISTEN, **options: Any) -> SyncApi:
    """`silo.connect` for blocking code (`token=`, `tls=`, `timeout=` as there)."""
    return _start(lambda: connect_async(address, **options))
