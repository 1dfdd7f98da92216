"""Tasks: Python functions that run as Silo jobs (docs/python.md#tasks).

    @silo.task(queue="emails", retry=silo.RetryPolicy(max_retries=5))
    async def send_email(ctx: silo.TaskContext, to: str) -> dict[str, bool]: ...

    handle = await send_email.enqueue(api, to="a@b.c", _start_at=when)
    sent = await handle.result(timeout=30)      # dict[str, bool], or JobFailed / JobCancelled

A task's name (`module.qualname` unless given) travels in the job's metadata under `silo.task`;
its arguments are the payload, `{"args": [...], "kwargs": {...}}` written by its serializer
(JSON by default). Keyword arguments of `enqueue` that start with `_` are job options, not task
arguments (see `JOB_OPTIONS`). The function may take a `TaskContext` first (annotated
`silo.TaskContext`, or named `ctx`); plain `def` functions run in the worker's thread pool.
"""

from __future__ import annotations

import asyncio
import inspect
import time
import typing
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Concatenate, Final, Generic, ParamSpec, TypeVar, overload

from silo import errors
from silo.serializers import JSON, Serializer
from silo.types import (
    ConcurrencyLimit,
    HeartbeatResult,
    Job,
    JobStatus,
    NewJob,
    RateLimit,
    RetryPolicy,
    Task,
    TaskFailure,
    to_ms,
)

if TYPE_CHECKING:
    from silo.api import Api

__all__ = [
    "JOB_OPTIONS",
    "TASK_METADATA_KEY",
    "JobCancelled",
    "JobFailed",
    "NonRetryable",
    "RawHandler",
    "TaskContext",
    "TaskDef",
    "TaskHandle",
    "task",
]

P = ParamSpec("P")
R = TypeVar("R")

#: The metadata key that names a job's task.
TASK_METADATA_KEY: Final = "silo.task"

#: The job options `TaskDef.enqueue` takes as `_`-prefixed keyword arguments.
JOB_OPTIONS: Final = frozenset(
    {
        "id",
        "tenant",
        "queue",
        "priority",
        "start_at",
        "start_at_ms",
        "delay",
        "retry",
        "concurrency_limits",
        "rate_limits",
        "metadata",
        "unique_key",
        "unique_for_ms",
        "retention_ms",
        "lease_ms",
        "expire_at",
        "expire_at_ms",
    }
)


class NonRetryable(Exception):
    """Raise it (or a subclass) from a task to fail the job at once, without the retries its
    policy has left. Its failure code is its qualified class name, like any exception's."""


class JobFailed(errors.SiloError):
    """The job ended FAILED: `job` is its final state, `failure` its last failure (code,
    message, traceback in `data`)."""

    def __init__(self, job: Job) -> None:
        failure = job.last_failure
        detail = f"{failure.code}: {failure.message}" if failure is not None else "failed"
        super().__init__(f"job {job.id} failed: {detail}")
        self.job = job
        self.failure: TaskFailure | None = failure


class JobCancelled(errors.SiloError):
    """The job ended CANCELLED: `job` is its final state."""

    def __init__(self, job: Job) -> None:
        super().__init__(f"job {job.id} was cancelled")
        self.job = job


class TaskContext:
    """What a running task knows of its job, and its line to the broker.

    `cursor` is the last checkpoint of this job: what an earlier attempt sent with
    `heartbeat(cursor=)`, so a retry can resume (b"" for none), updated by each heartbeat that
    carries one. `cancelled` turns True once the broker says the job was cancelled; an `async`
    task is then also cancelled (asyncio.CancelledError at its next await), a plain `def` task
    should check `cancelled` and return.
    """

    __slots__ = ("_cancelled", "_loop", "_on_cancel", "api", "cursor", "task", "worker_id")

    def __init__(
        self,
        api: Api,
        task: Task,
        *,
        worker_id: str,
        on_cancel: Callable[[], None] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.api = api
        self.task = task
        self.worker_id = worker_id
        self.cursor: bytes = task.heartbeat_cursor
        self._cancelled = False
        self._on_cancel = on_cancel
        self._loop = loop or asyncio.get_running_loop()

    @property
    def job_id(self) -> str:
        return self.task.job_id

    @property
    def task_id(self) -> str:
        return self.task.task_id

    @property
    def tenant(self) -> str:
        return self.task.tenant

    @property
    def queue(self) -> str:
        return self.task.queue

    @property
    def attempt(self) -> int:
        """1 for the first attempt, 2 for the first retry, ..."""
        return self.task.attempt

    @property
    def is_last_attempt(self) -> bool:
        """Whether a failure now ends the job FAILED (no retry left)."""
        return self.task.is_last_attempt

    @property
    def metadata(self) -> Mapping[str, str]:
        return self.task.metadata

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def mark_cancelled(self) -> None:
        """Record that the job was cancelled and tell the worker (once)."""
        if not self._cancelled:
            self._cancelled = True
            self._cancel_requested()

    def _cancel_requested(self) -> None:
        """What happens when the job is found cancelled: `on_cancel`. The worker's own
        subclass cancels the handler instead."""
        if self._on_cancel is not None:
            self._on_cancel()

    async def heartbeat(self, cursor: bytes | None = None) -> HeartbeatResult:
        """Extend the lease now; with `cursor`, store it durably as this job's checkpoint
        (handed to later attempts as `ctx.cursor`). The worker also heartbeats on its own.
        Raises LeaseNotHeld / TaskNotFound when the task is no longer this worker's."""
        result = await self.api.heartbeat_task(
            task_id=self.task.task_id, worker_id=self.worker_id, cursor=cursor or b""
        )
        if cursor:
            self.cursor = cursor
        if result.cancelled:
            self.mark_cancelled()
        return result

    def heartbeat_sync(self, cursor: bytes | None = None) -> HeartbeatResult:
        """`heartbeat` for a plain `def` task (from its worker thread)."""
        future = asyncio.run_coroutine_threadsafe(self.heartbeat(cursor), self._loop)
        return future.result()


#: A raw handler serves the jobs of a queue whatever their task name (e.g. enqueued by other
#: languages): payload bytes in, result bytes out, async or not.
RawHandler = Callable[[TaskContext, bytes], Awaitable[bytes] | bytes]


class TaskHandle(Generic[R]):
    """An enqueued task's job: its `id` (and `tenant`), and a way to await its result."""

    def __init__(
        self,
        api: Api,
        id: str,
        *,
        tenant: str = "",
        deduplicated: bool = False,
        serializer: Serializer = JSON,
    ) -> None:
        self.api = api
        self.id = id
        self.tenant = tenant
        self.deduplicated = deduplicated
        self.serializer = serializer

    def __repr__(self) -> str:
        return f"TaskHandle(id={self.id!r}, tenant={self.tenant!r})"

    async def result(self, timeout: float | None = None) -> R:
        """The task's return value once the job succeeds, waiting up to `timeout` seconds
        (None: as long as it takes). Stands on WaitJob: the broker answers the moment the job
        ends. Raises JobFailed, JobCancelled, TimeoutError, JobNotFound."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait_ms = 300_000
            if deadline is not None:
                wait_ms = max(0, min(wait_ms, int((deadline - time.monotonic()) * 1000)))
            job = await self.api.wait_job(id=self.id, tenant=self.tenant, timeout_ms=wait_ms)
            if job.status.terminal:
                return self.outcome(job)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {self.id} is still {job.status.name} after {timeout} s")

    def outcome(self, job: Job) -> R:
        """The return value of a terminal job; JobFailed or JobCancelled otherwise."""
        if job.status is JobStatus.SUCCEEDED:
            value: R = self.serializer.loads(job.result) if job.result else None  # type: ignore[assignment]
            return value
        if job.status is JobStatus.CANCELLED:
            raise JobCancelled(job)
        raise JobFailed(job)

    async def job(self, *, include_attempts: bool = False) -> Job:
        """The job's current state. Raises JobNotFound."""
        return await self.api.get_job(
            id=self.id, tenant=self.tenant, include_attempts=include_attempts
        )

    async def cancel(self) -> None:
        """Cancel the job. Raises JobNotFound, JobTerminal."""
        await self.api.cancel(id=self.id, tenant=self.tenant)


class TaskDef(Generic[P, R]):
    """A function registered as a task (made by `@silo.task`). `fn` is the function itself;
    the job defaults (queue, priority, retry, ...) apply to every `enqueue` unless a `_`
    option overrides them."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        queue: str = "",
        tenant: str = "",
        priority: int = 0,
        retry: RetryPolicy | None = None,
        concurrency_limits: Sequence[ConcurrencyLimit] = (),
        rate_limits: Sequence[RateLimit] = (),
        unique_key: str | Callable[..., str] = "",
        unique_for_ms: int = 0,
        lease_ms: int = 0,
        retention_ms: int = 0,
        metadata: Mapping[str, str] | None = None,
        serializer: Serializer = JSON,
    ) -> None:
        self.fn = fn
        self.name = name or f"{fn.__module__}.{fn.__qualname__}"
        self.queue = queue
        self.tenant = tenant
        self.priority = priority
        self.retry = retry
        self.concurrency_limits = tuple(concurrency_limits)
        self.rate_limits = tuple(rate_limits)
        #: A key, or a function of the task's arguments giving one ("" = no key).
        self.unique_key = unique_key
        self.unique_for_ms = unique_for_ms
        self.lease_ms = lease_ms
        self.retention_ms = retention_ms
        self.metadata = {**(metadata or {}), TASK_METADATA_KEY: self.name}
        self.serializer = serializer
        self.is_async = inspect.iscoroutinefunction(fn)
        self.takes_context = _takes_context(fn)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __repr__(self) -> str:
        return f"<silo task {self.name} queue={self.queue or 'default'!r}>"

    def new_job(self, *args: P.args, **kwargs: P.kwargs) -> NewJob:
        """The job that `enqueue` would enqueue with these arguments (for `enqueue_many`)."""
        options: dict[str, Any] = {
            k[1:]: kwargs.pop(k) for k in [k for k in kwargs if k.startswith("_")]
        }
        unknown = sorted(set(options) - JOB_OPTIONS)
        if unknown:
            raise errors.InvalidArgument(f"_{unknown[0]}: not a job option of {self.name}")
        payload = self.serializer.dumps({"args": list(args), "kwargs": kwargs})
        unique_key = options.get("unique_key")
        if unique_key is None:
            key = self.unique_key
            unique_key = key(*args, **kwargs) if callable(key) else key
        start_at_ms = _ms_option(options, "start_at")
        if "delay" in options:
            if start_at_ms:
                raise errors.InvalidArgument("_delay: give _delay or _start_at, not both")
            start_at_ms = int((time.time() + float(options["delay"])) * 1000)
        return NewJob(
            id=options.get("id", ""),
            tenant=options.get("tenant", self.tenant),
            queue=options.get("queue", self.queue),
            priority=options.get("priority", self.priority),
            start_at_ms=start_at_ms,
            retry_policy=options.get("retry", self.retry),
            concurrency_limits=tuple(options.get("concurrency_limits", self.concurrency_limits)),
            payload=payload,
            metadata={**self.metadata, **options.get("metadata", {})},
            rate_limits=tuple(options.get("rate_limits", self.rate_limits)),
            unique_key=unique_key,
            unique_for_ms=options.get("unique_for_ms", self.unique_for_ms),
            retention_ms=options.get("retention_ms", self.retention_ms),
            lease_ms=options.get("lease_ms", self.lease_ms),
            expire_at_ms=_ms_option(options, "expire_at"),
        )

    async def enqueue(self, api: Api, *args: P.args, **kwargs: P.kwargs) -> TaskHandle[R]:
        """Enqueue one run of the task with these arguments (`_`-prefixed keywords are job
        options: `_id`, `_tenant`, `_queue`, `_priority`, `_start_at` (datetime) or `_delay`
        (seconds), `_retry`, `_metadata`, `_unique_key`, ...); a handle on its job.
        Raises InvalidArgument, JobAlreadyExists, TypeError/ValueError from the serializer."""
        job = self.new_job(*args, **kwargs)
        enqueued = await api.enqueue(
            id=job.id,
            tenant=job.tenant,
            queue=job.queue,
            priority=job.priority,
            start_at_ms=job.start_at_ms,
            retry_policy=job.retry_policy,
            concurrency_limits=job.concurrency_limits,
            payload=job.payload,
            metadata=job.metadata,
            rate_limits=job.rate_limits,
            unique_key=job.unique_key,
            unique_for_ms=job.unique_for_ms,
            retention_ms=job.retention_ms,
            lease_ms=job.lease_ms,
            expire_at_ms=job.expire_at_ms,
        )
        return TaskHandle(
            api,
            enqueued.id,
            tenant=job.tenant,
            deduplicated=enqueued.deduplicated,
            serializer=self.serializer,
        )

    def handle(self, api: Api, id: str, *, tenant: str = "") -> TaskHandle[R]:
        """A handle on a job of this task enqueued earlier (e.g. by another process)."""
        return TaskHandle(api, id, tenant=tenant, serializer=self.serializer)

    def decode_arguments(self, payload: bytes) -> tuple[list[Any], dict[str, Any]]:
        """The (args, kwargs) a payload of this task carries. Raises ValueError when the
        payload is not of that shape."""
        value = self.serializer.loads(payload) if payload else {}
        if not isinstance(value, dict):
            raise ValueError("the payload is not an object with args and kwargs")
        args = value.get("args", [])
        kwargs = value.get("kwargs", {})
        if not isinstance(args, list | tuple) or not isinstance(kwargs, dict):
            raise ValueError("the payload's args must be a list and its kwargs an object")
        return list(args), kwargs


def _ms_option(options: Mapping[str, Any], name: str) -> int:
    """Option `name` (a datetime) or `name_ms` (Unix ms) as Unix ms; 0 when neither."""
    when = options.get(name)
    ms = int(options.get(f"{name}_ms", 0))
    if when is None:
        return ms
    if ms:
        raise errors.InvalidArgument(f"_{name}: give _{name} or _{name}_ms, not both")
    if not isinstance(when, datetime):
        raise errors.InvalidArgument(f"_{name}: expected a datetime")
    return to_ms(when)


def _takes_context(fn: Callable[..., Any]) -> bool:
    """Whether `fn`'s first parameter is a TaskContext: annotated so, or named `ctx`."""
    params = list(inspect.signature(fn).parameters.values())
    if not params or params[0].kind not in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        return False
    first = params[0]
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable annotations: fall back to the name
        hints = {}
    hint = hints.get(first.name, first.annotation)
    if hint is TaskContext:
        return True
    if isinstance(hint, str) and hint.rsplit(".", 1)[-1] == "TaskContext":
        return True
    return first.name == "ctx"


class _Decorator(typing.Protocol):
    @overload
    def __call__(
        self, fn: Callable[Concatenate[TaskContext, P], Awaitable[R]], /
    ) -> TaskDef[P, R]: ...
    @overload
    def __call__(self, fn: Callable[Concatenate[TaskContext, P], R], /) -> TaskDef[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, Awaitable[R]], /) -> TaskDef[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R], /) -> TaskDef[P, R]: ...


@overload
def task(fn: Callable[Concatenate[TaskContext, P], Awaitable[R]], /) -> TaskDef[P, R]: ...
@overload
def task(fn: Callable[Concatenate[TaskContext, P], R], /) -> TaskDef[P, R]: ...
@overload
def task(fn: Callable[P, Awaitable[R]], /) -> TaskDef[P, R]: ...
@overload
def task(fn: Callable[P, R], /) -> TaskDef[P, R]: ...
@overload
def task(
    *,
    name: str | None = None,
    queue: str = "",
    tenant: str = "",
    priority: int = 0,
    retry: RetryPolicy | None = None,
    concurrency_limits: Sequence[ConcurrencyLimit] = (),
    rate_limits: Sequence[RateLimit] = (),
    unique_key: str | Callable[..., str] = "",
    unique_for_ms: int = 0,
    lease_ms: int = 0,
    retention_ms: int = 0,
    metadata: Mapping[str, str] | None = None,
    serializer: Serializer = JSON,
) -> _Decorator: ...
def task(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Register a function as a task: `@silo.task` or `@silo.task(queue=..., retry=...,
    priority=..., tenant=..., concurrency_limits=..., rate_limits=..., unique_key=...,
    unique_for_ms=..., lease_ms=..., retention_ms=..., metadata=..., name=..., serializer=...)`
    (the job defaults). `unique_key` is a key or a function of the task's arguments that
    returns one (e.g. `lambda user_id: f"sync:{user_id}"`)."""
    if fn is not None:
        return TaskDef(fn, **options)

    def decorate(f: Callable[..., Any]) -> TaskDef[Any, Any]:
        return TaskDef(f, **options)

    return decorate
