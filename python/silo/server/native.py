"""The native broker (silo._native) serving one asyncio event loop.

Each call hands the native broker a future of this loop; the broker runs the call on its tokio
runtime and queues the future with its answer in a completion queue. The loop watches the queue's
file descriptor (`loop.add_reader`) and settles every queued future in one native call, so tokio
threads never take the GIL and many answers cost one wakeup (rust/py/completions.rs says why).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from silo._native import Broker, Call, Completions

if TYPE_CHECKING:
    from silo.config import ServeConfig

__all__ = ["NativeBroker"]

T = TypeVar("T")


class NativeBroker:
    """A broker opened on the running event loop; satisfies service.BrokerApi.

    `call(rpc, request)` serves any unary RPC of the core's table (`silo._native.rpcs()`)
    from its encoded request and returns the encoded reply, raising the classes of silo.errors.
    Cancelling the task that awaits a call aborts the native call (a parked LeaseTasks then
    leases nothing for it; a state change the shard actor already began still completes,
    durably). Use the broker from the loop that opened it only; that loop keeps watching the
    completion queue until it closes, so answers that arrive after `close()` are still
    delivered.
    """

    def __init__(self, native: Broker, completions: Completions) -> None:
        self._native = native
        self._completions = completions
        self._loop = asyncio.get_running_loop()

    @classmethod
    async def open(cls, config: ServeConfig) -> NativeBroker:
        """Open (or create) the store of `config` and rebuild the broker's state.

        Raises StoreUnavailable when the store cannot be opened, InvalidArgument for a bad URL.
        """
        loop = asyncio.get_running_loop()
        completions = Completions()
        loop.add_reader(completions.fileno(), completions.drain)
        try:
            native: Broker = await _run(
                loop,
                lambda future: Broker.open(completions, future, config.broker_settings()),
            )
        except BaseException:
            loop.remove_reader(completions.fileno())
            raise
        return cls(native, completions)

    def call(self, rpc: str, request: bytes) -> Awaitable[bytes]:
        """Serve the unary RPC named `rpc` (e.g. "Enqueue") from its encoded request; the
        encoded reply, or the silo.errors exception of the failure."""
        return self._rpc(self._native, rpc, request)

    # Lifecycle

    async def wait_fenced(self) -> None:
        """Return once a newer broker has fenced this one off the store: from then on every
        call fails with StoreUnavailable, and the process should stop serving."""
        await _run(self._loop, self._native.wait_fenced)

    def settings(self) -> dict[str, str]:
        """The effective settings (store, flush_interval_ms, lease_ms, ...)."""
        return self._native.settings()

    async def close(self) -> None:
        """Finish queued commands, answer parked LeaseTasks, flush and close the store.
        Idempotent."""
        await _run(self._loop, self._native.close)

    async def _rpc(self, native: Broker, rpc: str, request: bytes) -> bytes:
        """Start `rpc` on `request` and await its answer; cancelling aborts the call."""
        future: asyncio.Future[bytes] = self._loop.create_future()
        call = native.call(future, rpc, request)
        try:
            return await future
        except asyncio.CancelledError:
            call.abort()
            raise


async def _run(loop: asyncio.AbstractEventLoop, start: Callable[[asyncio.Future[T]], Call]) -> T:
    """Start a native call that settles the future it is given and await it; cancelling aborts
    the call."""
    future: asyncio.Future[T] = loop.create_future()
    call = start(future)
    try:
        return await future
    except asyncio.CancelledError:
        call.abort()
        raise
