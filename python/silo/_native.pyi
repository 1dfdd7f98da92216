"""Type stub of silo._native, the PyO3 extension built from rust/py/ (checked by mypy)."""

from __future__ import annotations

from collections.abc import Awaitable

__version__: str

class Broker:
    """A running broker over one store. Every method takes the encoded protobuf request of the
    RPC of the same name (silo.v1) and returns the encoded reply; errors are raised as the
    classes of silo.errors. Every state change is durable before its awaitable resolves."""

    @staticmethod
    def open(
        *,
        store: str,
        lease_ms: int = 30000,
        flush_interval_ms: int | None = None,
        max_payload_bytes: int = 1048576,
        store_max_retries: int = 3,
        cache_bytes: int = 64 << 20,
        gc_interval_ms: int = 60000,
        gc_min_age_ms: int = 300000,
        fault_injection: bool = False,
    ) -> Awaitable[Broker]:
        """Open (or create) the store and rebuild in-memory state.

        store: a path, file:///abs, memory:// or s3://bucket/prefix.
        flush_interval_ms: SlateDB WAL flush interval; None picks the store's preset.
        store_max_retries: object-store retries per call before a call fails with UNAVAILABLE.
        cache_bytes: SlateDB in-memory block cache.
        gc_interval_ms, gc_min_age_ms: garbage collection of obsolete store files.
        fault_injection: whether set_faults may inject object-store faults (tests only).
        Raises StoreUnavailable when the store cannot be opened, InvalidArgument for a bad URL.
        """

    def enqueue(self, request: bytes) -> Awaitable[bytes]: ...
    def enqueue_batch(self, request: bytes) -> Awaitable[bytes]: ...
    def cancel(self, request: bytes) -> Awaitable[bytes]: ...
    def lease_tasks(self, request: bytes) -> Awaitable[bytes]: ...
    def heartbeat_task(self, request: bytes) -> Awaitable[bytes]: ...
    def report_task_outcome(self, request: bytes) -> Awaitable[bytes]: ...
    def report_task_outcomes(self, request: bytes) -> Awaitable[bytes]: ...
    def get_job(self, request: bytes) -> Awaitable[bytes]: ...
    # silo.admin.v1.Admin
    def get_concurrency_key(self, request: bytes) -> Awaitable[bytes]:
        """silo.admin.v1.Admin/GetConcurrencyKey."""
    def get_stats(self, request: bytes) -> Awaitable[bytes]:
        """silo.admin.v1.Admin/GetStats."""
    def set_faults(self, request: bytes) -> Awaitable[bytes]:
        """silo.admin.v1.Admin/SetFaults; FaultInjectionDisabled unless opened with it."""
    def wait_fenced(self) -> Awaitable[None]:
        """Resolves once a newer broker has fenced this one off the store: from then on every
        call fails with StoreUnavailable, and the process should stop serving."""
    def settings(self) -> dict[str, str]:
        """The effective settings (store, flush_interval_ms, lease_ms, ...) for logs and bench."""
    def close(self) -> Awaitable[None]:
        """Finish queued commands, flush and close SlateDB. Idempotent."""
