"""The one table from Silo's exceptions to gRPC status codes, used by the server and the client.

Server side, `to_grpc_error` decides the status of every failed call (docs/api.md#status-codes): the
lookup walks the exception's MRO, so a subclass (JobNotFound) gets its family's status
(NOT_FOUND). InternalError and anything that is not a SiloError become INTERNAL with a fixed
message; the detail and traceback go to the log, never to the client. Client side,
`error_for_status` inverts the same table.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Final

from grpclib.const import Status
from grpclib.exceptions import GRPCError

from silo import errors

__all__ = ["INTERNAL_MESSAGE", "STATUS_OF", "error_for_status", "status_for", "to_grpc_error"]

log = logging.getLogger("silo.server")

#: The message clients see for INTERNAL; the real detail is only in the server log.
INTERNAL_MESSAGE: Final = "internal error"

#: Every SiloError family and its gRPC status. A class missing here (and from its MRO) is a bug
#: that tests/ catches; there is deliberately no catch-all row.
STATUS_OF: Final[Mapping[type[errors.SiloError], Status]] = MappingProxyType(
    {
        errors.InvalidArgument: Status.INVALID_ARGUMENT,
        errors.NotFound: Status.NOT_FOUND,
        errors.AlreadyExists: Status.ALREADY_EXISTS,
        errors.FailedPrecondition: Status.FAILED_PRECONDITION,
        errors.Unauthenticated: Status.UNAUTHENTICATED,
        errors.PermissionDenied: Status.PERMISSION_DENIED,
        errors.ResourceExhausted: Status.RESOURCE_EXHAUSTED,
        errors.Unimplemented: Status.UNIMPLEMENTED,
        errors.Unavailable: Status.UNAVAILABLE,
        errors.InternalError: Status.INTERNAL,
    }
)

_ERROR_OF: Final[Mapping[Status, type[errors.SiloError]]] = MappingProxyType(
    {status: cls for cls, status in STATUS_OF.items()}
)


def status_for(exc_type: type[BaseException]) -> Status | None:
    """The status of `exc_type`: the table row of the nearest class in its MRO, or None."""
    for cls in exc_type.__mro__:
        if issubclass(cls, errors.SiloError) and cls in STATUS_OF:
            return STATUS_OF[cls]
    return None


def to_grpc_error(exc: Exception, *, method: str) -> GRPCError:
    """The GRPCError to answer for `exc`, raised by the broker while serving `method`.

    A mapped SiloError keeps its message (it names the field or the object). InternalError and
    unmapped exceptions answer INTERNAL with INTERNAL_MESSAGE and log the traceback.
    """
    status = status_for(type(exc))
    if status is None or status is Status.INTERNAL:
        log.error("%s failed with an internal error: %r", method, exc, exc_info=exc)
        return GRPCError(Status.INTERNAL, INTERNAL_MESSAGE)
    return GRPCError(status, str(exc))


def error_for_status(
    status: Status,
    message: str | None,
    *,
    refine: Sequence[type[errors.SiloError]] = (),
) -> errors.SiloError | None:
    """The SiloError for a call that ended with `status`, or None if the table has no row for it.

    `refine` lists the specific classes the call can raise (e.g. JobNotFound for GetJob); the
    first whose status is `status` is used instead of the family class.
    """
    for cls in refine:
        if status_for(cls) is status:
            return cls(message or "")
    family = _ERROR_OF.get(status)
    return None if family is None else family(message or "")
