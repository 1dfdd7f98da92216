"""`silo.Client`: the typed `silo.Api` of a broker across the network, over grpclib.

`silo.connect(address)` returns one. Requests and replies are encoded and decoded by the native
module from and into `silo.types` values (rust/py/convert/), so no protobuf object reaches the
caller and a message costs a few µs instead of betterproto's 12-200 µs. With `streams` (the
default), `enqueue` goes out on one EnqueueStream shared by every caller of the client (a
message on an open stream costs the broker a fraction of a unary call: docs/api.md#streams),
and `silo.Worker` runs over a WorkerSession (`open_session`); a broker that does not serve the
streams gets the unary calls. Errors: a call that
ends with a status of silo/status.py's table raises that table's class, refined to the specific
class the method documents (JobNotFound for GetJob, TaskNotFound for HeartbeatTask...); a
broker that cannot be reached raises Unavailable.
"""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from grpclib.client import Channel, UnaryUnaryMethod
from grpclib.exceptions import GRPCError, StreamTerminatedError

from silo import _native, errors
from silo.config import DEFAULT_LISTEN, parse_listen
from silo.methods import ApiMethods
from silo.server.codec import PassthroughCodec, RawMessage
from silo.status import error_for_status
from silo.streams import (
    EnqueueStreamClient,
    SessionClient,
    StreamRefused,
    error_of,
    is_lost_connection,
)
from silo.types import Enqueued, Task

if TYPE_CHECKING:
    from silo.cluster import ClusterClient

__all__ = ["TOKEN_VAR", "Client", "connect"]

#: The environment variable a client takes its token from when none is given.
TOKEN_VAR: Final = "SILO_TOKEN"

log = logging.getLogger("silo.client")

_Refine = Sequence[type[errors.SiloError]]

_JOB: Final[_Refine] = (errors.JobNotFound, errors.JobTerminal)
#: RestartJob, ExpediteJob, DeleteJob: a job in a state the call does not apply to.
_OPERATOR: Final[_Refine] = (errors.JobNotFound, errors.InvalidJobState)
_TASK: Final[_Refine] = (errors.TaskNotFound, errors.OutcomeAlreadyRecorded, errors.LeaseNotHeld)

#: The specific classes each RPC raises for a status of its family (the embedded broker raises
#: them directly; a gRPC status carries only the family).
_REFINE: Final[Mapping[str, _Refine]] = {
    "Enqueue": (errors.JobAlreadyExists,),
    "Cancel": _JOB,
    "GetJob": _JOB,
    "WaitJob": _JOB,
    "RestartJob": _OPERATOR,
    "ExpediteJob": _OPERATOR,
    "DeleteJob": _OPERATOR,
    "HeartbeatTask": _TASK,
    "ReportTaskOutcome": _TASK,
    "GetSchedule": (errors.ScheduleNotFound,),
    "DeleteSchedule": (errors.ScheduleNotFound,),
}

#: Seconds added to a call's own wait (LeaseTasks' wait_ms, WaitJob's timeout_ms) for its
#: deadline.
_WAIT_SLACK_S: Final = 30.0


class Client(ApiMethods):
    """A connection to one broker (see the module doc); its subclass
    `silo.cluster.ClusterClient` is the client of several nodes. Use `async with` or call
    `close()`.

    `timeout` (seconds) bounds every call, plus the call's own wait for long-polls
    (`lease_tasks(wait_ms=)`, `wait_job(timeout_ms=)`); None waits forever. Create it inside
    the event loop that uses it (grpclib binds the running loop when the channel is made).
    `token` is sent as `authorization: Bearer <token>` (default: the SILO_TOKEN environment
    variable, if set; docs/security.md); `tls` is True (the system's CA certificates) or an
    `ssl.SSLContext` (`silo.tls_context(ca=..., cert=..., key=...)` for a private CA or mTLS).
    `streams=False` keeps every call unary.
    """

    def __init__(
        self,
        address: str | Sequence[str] = DEFAULT_LISTEN,
        *,
        token: str | None = None,
        tls: bool | ssl.SSLContext | None = None,
        timeout: float | None = 60.0,
        streams: bool = True,
    ) -> None:
        addresses = [address] if isinstance(address, str) else list(address)
        if not addresses:
            raise errors.InvalidArgument("address: give at least one HOST:PORT")
        try:
            host, port = parse_listen(addresses[0])
        except ValueError as exc:
            raise errors.InvalidArgument(f"address: {exc}") from None
        self.addresses = tuple(addresses)
        self._options: dict[str, Any] = {
            "token": token,
            "tls": tls,
            "timeout": timeout,
            "streams": streams,
        }
        self._channel = Channel(host, port, ssl=tls or None, codec=PassthroughCodec())
        self._timeout = timeout
        if token is None:
            token = os.environ.get(TOKEN_VAR) or None
        self._metadata = {"authorization": f"Bearer {token}"} if token else None
        self._methods: dict[str, UnaryUnaryMethod[bytes, bytes]] = {}
        self._paths = {method: f"/{service}/{method}" for service, method, _ in _native.rpcs()}
        #: Whether to try the streams; False once the broker refused one (UNIMPLEMENTED).
        self.streams = streams
        self._enqueues: EnqueueStreamClient | None = None

    def for_nodes(self, addresses: Sequence[str]) -> ClusterClient:
        """A client of the cluster whose nodes are `addresses` (with this client's own address
        first), made with this client's token, TLS, timeout and streams settings: what
        `silo.connect(addresses, ...)` would give. The caller closes it."""
        from silo.cluster import ClusterClient

        seeds = list(dict.fromkeys([*self.addresses, *addresses]))
        return ClusterClient(seeds, **self._options)

    async def close(self) -> None:
        """Close the connection; calls in progress fail. Idempotent."""
        if self._enqueues is not None:
            await self._enqueues.close()
            self._enqueues = None
        self._channel.close()

    async def _invoke(self, rpc: str, fields: object) -> Any:
        if rpc == "Enqueue" and self.streams:
            try:
                return await self._enqueue_streamed(fields)
            except StreamRefused:
                log.info("the broker does not serve EnqueueStream: unary Enqueue from now on")
                self.streams = False
        request = _native.encode_request(rpc, fields)
        reply = await self.call(rpc, request, wait_s=_wait_of(rpc, fields))
        return _native.decode_reply(rpc, reply)

    async def _enqueue_streamed(self, fields: object) -> Enqueued:
        if self._enqueues is None:
            self._enqueues = EnqueueStreamClient(self._channel, self._metadata, self._timeout)
        result = await self._enqueues.enqueue(fields)
        if result.code:
            raise error_of(result.code, result.message, _REFINE["Enqueue"])
        return Enqueued(result.id, result.deduplicated)

    def open_session(
        self, *, worker_id: str, queues: Sequence[str], on_task: Callable[[Task], None]
    ) -> SessionClient | None:
        """A WorkerSession for `silo.Worker` (None when streams are off): `on_task` gets each
        task pushed. Call its `start(credits)` to open it."""
        if not self.streams:
            return None
        return SessionClient(
            self._channel,
            self._metadata,
            worker_id=worker_id,
            queues=queues,
            on_task=on_task,
            timeout=self._timeout,
        )

    async def call(self, rpc: str, request: bytes, *, wait_s: float = 0.0) -> bytes:
        """The unary RPC `rpc` on its encoded request: the encoded reply. Raises the
        silo.errors class of the answer's status, Unavailable when the broker is unreachable."""
        method = self._methods.get(rpc)
        if method is None:
            if rpc not in self._paths:
                raise ValueError(f"no RPC named {rpc!r}")
            method = UnaryUnaryMethod(
                self._channel,
                self._paths[rpc],
                RawMessage,  # type: ignore[arg-type]  # the codec passes bytes through
                RawMessage,  # type: ignore[arg-type]
            )
            self._methods[rpc] = method
        timeout = None if self._timeout is None else self._timeout + wait_s
        try:
            reply: bytes = await method(request, timeout=timeout, metadata=self._metadata)
        except GRPCError as exc:
            error = error_for_status(exc.status, exc.message, refine=_REFINE.get(rpc, ()))
            if error is None:
                raise
            raise error from exc
        except (OSError, StreamTerminatedError, AttributeError) as exc:
            if not is_lost_connection(exc):
                raise
            raise errors.Unavailable(f"cannot reach the broker: {exc!r}") from exc
        return reply


def _wait_of(rpc: str, fields: object) -> float:
    """How long, in seconds, the call may wait by design (long-polls)."""
    if isinstance(fields, dict):
        if rpc == "LeaseTasks":
            return float(fields.get("wait_ms") or 0) / 1000
        if rpc == "WaitJob":
            return float(fields.get("timeout_ms") or 0) / 1000
    return 0.0


async def connect(
    address: str | Sequence[str] = DEFAULT_LISTEN,
    *,
    token: str | None = None,
    tls: bool | ssl.SSLContext | None = None,
    timeout: float | None = 60.0,
    streams: bool = True,
) -> Client:
    """A client of the broker at `address` (`HOST:PORT`). A list of two or more addresses names
    nodes of a cluster: the `silo.cluster.ClusterClient` then sends each call to the node that
    serves its tenant (docs/cluster.md#clients). Connecting is lazy: an unreachable broker
    shows as Unavailable on the first call. `token` (default $SILO_TOKEN) and `tls` as for
    `Client`, passed to every node; `streams=False` keeps every call unary."""
    addresses = [address] if isinstance(address, str) else list(dict.fromkeys(address))
    if len(addresses) > 1:
        from silo.cluster import ClusterClient

        return ClusterClient(addresses, token=token, tls=tls, timeout=timeout, streams=streams)
    return Client(addresses, token=token, tls=tls, timeout=timeout, streams=streams)
