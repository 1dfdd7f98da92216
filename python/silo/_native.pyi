"""Type stub of silo._native, the PyO3 extension built from rust/py/ (checked by mypy).

Calls do not return awaitables: each takes an asyncio future of the calling event loop, starts the
work on the extension's tokio runtime and returns a `Call`. When the work ends, the future and its
outcome are queued in the `Completions` the broker was opened with, and the loop's next
`Completions.drain()` settles the future (python/silo/broker.py drives this)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, final

__all__ = [
    "__version__",
    "Broker",
    "Completions",
    "Call",
    "Stream",
    "Principal",
    "status_table",
    "rpcs",
    "encode_request",
    "decode_reply",
    "encode_frames",
    "decode_frames",
]

__version__: str

def status_table() -> list[tuple[str, int]]:
    """The core's status table: (silo.errors class name, gRPC code) per error variant
    (rust/error.rs `Error::status`)."""

def rpcs() -> list[tuple[str, str, bool]]:
    """Every RPC of the core's table (rust/rpc.rs): (service, method, streaming)."""

def encode_request(rpc: str, args: object) -> bytes:
    """The encoded protobuf request of the unary RPC `rpc` from its typed arguments: a dict of
    the request's fields (keyword arguments of the silo.Api method) or a silo.types value with
    those attributes (nested values likewise). ValueError for an unknown RPC name;
    InvalidArgument naming a field of the wrong type or out of its wire range."""

def decode_reply(rpc: str, data: bytes) -> Any:
    """The silo.types value of the unary RPC `rpc`'s encoded reply (python/silo/api.py gives
    each method's type). InternalError when the bytes do not decode."""

def encode_frames(kind: str, items: Iterable[object]) -> bytes:
    """Stream requests of one kind, each encoded and framed as on a gRPC stream, in one bytes:
    "enqueue" (EnqueueStream requests from NewJob values or enqueue keyword dicts), "outcome"
    (WorkerSession outcomes from Report values), "heartbeat" (WorkerSession heartbeats from
    objects or dicts with task_id and cursor). InvalidArgument naming a field of the wrong type;
    ValueError for an unknown kind."""

def decode_frames(rpc: str, data: bytes) -> tuple[list[Any], int]:
    """The answers in a chunk of framed stream messages of `rpc`, and how many bytes of `data`
    they took (a message cut at the end is left for the next chunk). "WorkerSession": a pushed
    task as silo.Task, an outcome's answer as silo.ReportResult, a heartbeat's as
    (code, message, cancelled, lease_expires_at_ms); "EnqueueStream": silo.EnqueueResult.
    InternalError when a message does not decode."""

@final
class Principal:
    """A verified token of `silo serve --auth-file` (docs/security.md): its name, tenant
    patterns and roles. Built once per entry of the file; passed with each call the token makes
    so that the core checks the RPC's role and the tenants the request names."""

    def __new__(cls, name: str, tenants: list[str], roles: list[str]) -> Principal:
        """InvalidArgument naming `tenants[i]` (a `*` anywhere but at the end, a control
        character, over 127 characters) or `roles[i]` (not produce, work, operate or admin)."""
    @property
    def name(self) -> str: ...
    @property
    def tenants(self) -> list[str]:
        """The patterns as given: names, `prefix*`, `*`."""
    @property
    def roles(self) -> list[str]:
        """Distinct role names, in the order produce, work, operate, admin."""
    def allows_tenant(self, tenant: str) -> bool:
        """Whether the token may act on `tenant`."""
    def may_call(self, rpc: str) -> bool:
        """Whether the token's roles allow the RPC named `rpc` (ValueError for an unknown
        name)."""

@final
class Completions:
    """The completion queue of one event loop: watch `fileno()` for readability
    (`loop.add_reader(c.fileno(), c.drain)`); tokio threads never take the GIL to answer."""

    def __init__(self) -> None: ...
    def fileno(self) -> int:
        """A file descriptor that becomes readable when finished calls are queued."""
    def drain(self) -> int:
        """Settle the future of every queued call (result or silo.errors exception; a future
        already done, i.e. cancelled, is left alone); returns how many were taken. Call it on
        the loop thread. A panic in the work arrives as InternalError."""

@final
class Call:
    """One call in flight."""

    def abort(self) -> None:
        """Stop the work if it is still running; cancel its future first (an aborted call's
        future is never settled). A parked LeaseTasks then leases nothing for it."""

@final
class Broker:
    """A running broker over one store. `call` takes a future, an RPC name and the encoded
    protobuf request of that RPC and settles the future with the encoded reply, or with the
    silo.errors exception of the failure. Every state change is durable before its future is
    settled."""

    @staticmethod
    def open(
        completions: Completions,
        future: asyncio.Future[Broker],
        settings: str,
    ) -> Call:
        """Open (or create) the store and rebuild in-memory state; `future` gets the Broker,
        which answers through `completions`.

        settings: a JSON object with every broker setting (`ServeConfig.broker_settings()`,
        python/silo/config.py, is where they are defined, with their defaults).
        Fails with StoreUnavailable when the store cannot be opened, InvalidArgument for a bad
        URL or setting (the field named), including a missing or unknown setting.
        """

    def call(
        self,
        future: asyncio.Future[bytes],
        rpc: str,
        request: bytes,
        principal: Principal | None = None,
        metadata: list[tuple[str, bytes]] | None = None,
    ) -> Call:
        """Serve the unary RPC whose method name is `rpc` (e.g. "Enqueue", "GetStats"; see
        `rpcs()`) from its encoded request, for `principal` (None: a trusted caller, no
        checks). ValueError for a name not in the table; a streaming RPC fails with
        InvalidArgument, one not served yet with Unimplemented. PermissionDenied when the
        principal lacks the RPC's role or the request names a tenant outside its patterns.
        Admin/SetFaults fails with FaultInjectionDisabled unless opened with it. `metadata`
        (the caller's, values as bytes) is passed on when the call is forwarded to the node
        that owns its shard, which checks the token again (docs/cluster.md#routing)."""
    def invoke(
        self,
        future: asyncio.Future[Any],
        rpc: str,
        args: object,
        principal: Principal | None = None,
    ) -> Call:
        """Serve the unary RPC `rpc` from its typed arguments (as `encode_request` takes them)
        for `principal` (as `call`); the future gets the reply as its silo.types value (as
        `decode_reply` makes it), or the silo.errors exception of the failure. Bad arguments
        raise InvalidArgument at once."""
    def wait_fenced(self, future: asyncio.Future[None]) -> Call:
        """Settles `future` (with None) once a newer broker has fenced this one off the store:
        from then on every call fails with StoreUnavailable, and the process should stop
        serving."""
    def leave(self, future: asyncio.Future[None]) -> Call:
        """Settles `future` once this node has left its cluster, handing every shard over to
        the nodes that stay (at once without a cluster)."""
    def settings(self) -> dict[str, str]:
        """The effective settings (store, flush_interval_ms, lease_ms, ...) for logs and bench."""
    def metrics(self) -> dict[str, Any]:
        """The core's counters and histograms for /metrics, read without waiting for the shard:
        `queues`: [(queue label, enqueued, leased, {outcome: finished})] (at most 200 labels
        plus "_other"; outcomes succeeded, failed, cancelled, lease_expired);
        `commit_batch_size` and `commit_duration_seconds`: {"buckets": [(upper bound,
        cumulative count)], "count": int, "sum": float}; `jobs`: {status: jobs stored} (lower-case
        status names); `object_store_requests`: {op: n}."""
    def close(self, future: asyncio.Future[None]) -> Call:
        """Finish queued commands, flush and close SlateDB; settles `future` with None.
        Idempotent."""

@final
class Stream:
    """One stream RPC in flight (EnqueueStream, WorkerSession), served on `broker`'s tokio
    runtime: the server pushes each raw request and awaits the encoded answers in batches
    (python/silo/server/streams.py). Answers settle their futures through the broker's
    `Completions`."""

    def __new__(
        cls,
        broker: Broker,
        rpc: str,
        principal: Principal | None = None,
        metadata: list[tuple[str, bytes]] | None = None,
    ) -> Stream:
        """Start serving the streaming RPC named `rpc` ("EnqueueStream" or "WorkerSession") for
        `principal` (None: trusted; otherwise the stream ends at once with PermissionDenied
        when it lacks the role, and only its tenants' jobs and tasks are served), with the
        stream's `metadata` (in a cluster, what its requests forwarded to other nodes carry:
        the caller's token). ValueError for a name that is not a streaming RPC of `rpcs()`."""
    def push(self, request: bytes) -> bool:
        """Queue one raw request; False once the stream's window is full (await `room` before
        reading more). Ignored after `close` or the end. The stream takes it at the next
        `wake`."""
    def wake(self) -> None:
        """Hand the requests pushed so far to the stream: once per event-loop iteration that
        pushed, so that one wakeup of the native side serves all of them."""
    def room(self, future: asyncio.Future[None]) -> Call:
        """Settles `future` with None once the window has room again, or the stream is over."""
    def close(self) -> None:
        """No more requests: the stream answers what it holds, then ends."""
    def next(self, future: asyncio.Future[bytes]) -> None:
        """Settles `future` with the next answers, in order, as gRPC messages on the wire (each
        a 0 byte, its length as a big-endian u32, the encoded message), with b"" once the
        stream ended OK, or with the silo.errors exception that ends it (InvalidArgument naming
        the field for a WorkerSession message it cannot answer). Answers already there settle
        it before this returns; otherwise it is settled through `Completions` when they come.
        Cancelling `future` abandons the call."""
    def abort(self) -> None:
        """Stop serving (the client went away): changes the shard already began still complete,
        and a session's tasks stay leased until they are reported or expire."""
