"""Silo's exception hierarchy: every error a caller can tell apart, rooted at SiloError.

The native module raises these classes (rust/py/errors.rs maps the Rust error enum onto them
without a catch-all); python/silo/status.py maps each onto one gRPC status.
Each class also subclasses the nearest builtin so plain `except LookupError` works.
"""

from __future__ import annotations

__all__ = [
    "SiloError",
    "InvalidArgument",
    "NotFound",
    "JobNotFound",
    "TaskNotFound",
    "ScheduleNotFound",
    "AlreadyExists",
    "JobAlreadyExists",
    "OutcomeAlreadyRecorded",
    "FailedPrecondition",
    "JobTerminal",
    "InvalidJobState",
    "LeaseNotHeld",
    "FaultInjectionDisabled",
    "Unauthenticated",
    "PermissionDenied",
    "ResourceExhausted",
    "Unimplemented",
    "Unavailable",
    "StoreUnavailable",
    "ShardUnavailable",
    "InternalError",
]


class SiloError(Exception):
    """Base of every error Silo raises on purpose."""


class InvalidArgument(SiloError, ValueError):
    """A request field is out of bounds; the message names the field (INVALID_ARGUMENT)."""


class NotFound(SiloError, LookupError):
    """The named object does not exist (NOT_FOUND)."""


class JobNotFound(NotFound):
    """No job with this id in this tenant."""


class TaskNotFound(NotFound):
    """No task with this id."""


class ScheduleNotFound(NotFound):
    """No schedule with this name in this tenant."""


class AlreadyExists(SiloError):
    """The thing to create is already there (ALREADY_EXISTS)."""


class JobAlreadyExists(AlreadyExists):
    """A job with this id exists in this tenant, whatever its status."""


class OutcomeAlreadyRecorded(AlreadyExists):
    """An outcome was already recorded for this task."""


class FailedPrecondition(SiloError, RuntimeError):
    """The object is not in a state that allows the call (FAILED_PRECONDITION)."""


class JobTerminal(FailedPrecondition):
    """The job already ended (SUCCEEDED, FAILED or CANCELLED)."""


class InvalidJobState(FailedPrecondition):
    """An operator call on a job in a state it does not apply to (restart a job that is not
    FAILED or CANCELLED, expedite one that is not SCHEDULED, delete one that has not ended)."""


class LeaseNotHeld(FailedPrecondition):
    """The task's lease expired, belongs to another worker, or its outcome is recorded."""


class FaultInjectionDisabled(FailedPrecondition):
    """Admin.SetFaults on a server started without --fault-injection."""


class Unauthenticated(SiloError, PermissionError):
    """The call carries no token, or one the broker does not know (UNAUTHENTICATED). Raised
    by the server's token check (python/silo/server/auth.py); the core raises it only for a
    forwarded call that the owner node refused (docs/cluster.md#routing)."""


class PermissionDenied(SiloError, PermissionError):
    """The token may not make this call, or not for this tenant (PERMISSION_DENIED): the same
    answer whether or not the job exists (docs/security.md)."""


class ResourceExhausted(SiloError, RuntimeError):
    """A limit of the server is reached: a message over the size limit, too many long-polls or
    streams, too many request bytes in flight (RESOURCE_EXHAUSTED). Raised by the server's
    transport limits (python/silo/server/limits.py); the core raises it only for a forwarded
    call that the owner node refused. Retry later."""


class Unimplemented(SiloError, NotImplementedError):
    """The feature is not built yet (UNIMPLEMENTED)."""


class Unavailable(SiloError, ConnectionError):
    """The broker cannot serve the call right now; retrying later may succeed (UNAVAILABLE)."""


class StoreUnavailable(Unavailable):
    """The object store failed, or a newer broker fenced this one; nothing was acknowledged."""


class ShardUnavailable(Unavailable):
    """The call's shard is moving between nodes, has no owner yet, or its owner cannot be
    reached (docs/cluster.md#failure-modes); nothing was applied, and a retry may succeed."""


class InternalError(SiloError, RuntimeError):
    """A bug or an unexpected failure; the detail is logged, clients see a fixed message."""
