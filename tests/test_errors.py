"""Error mapping (docs/api.md#status-codes): every silo.errors class has one gRPC status in
silo/status.py, with no catch-all; unknown errors become INTERNAL with a fixed message."""

from __future__ import annotations

import inspect

import pytest
from grpclib.const import Status
from silo import errors
from silo import status as status_table
from silo.status import (
    INTERNAL_MESSAGE,
    STATUS_OF,
    error_for_status,
    status_for,
    to_grpc_error,
)

ALL_CLASSES = [
    obj
    for _, obj in inspect.getmembers(errors, inspect.isclass)
    if obj.__module__ == errors.__name__
]
SILO_ERRORS = [cls for cls in ALL_CLASSES if issubclass(cls, errors.SiloError)]

EXPECTED = {
    "InvalidArgument": Status.INVALID_ARGUMENT,
    "NotFound": Status.NOT_FOUND,
    "JobNotFound": Status.NOT_FOUND,
    "TaskNotFound": Status.NOT_FOUND,
    "AlreadyExists": Status.ALREADY_EXISTS,
    "JobAlreadyExists": Status.ALREADY_EXISTS,
    "OutcomeAlreadyRecorded": Status.ALREADY_EXISTS,
    "FailedPrecondition": Status.FAILED_PRECONDITION,
    "JobTerminal": Status.FAILED_PRECONDITION,
    "LeaseNotHeld": Status.FAILED_PRECONDITION,
    "Unimplemented": Status.UNIMPLEMENTED,
    "Unavailable": Status.UNAVAILABLE,
    "StoreUnavailable": Status.UNAVAILABLE,
    "InternalError": Status.INTERNAL,
    "Unauthenticated": Status.UNAUTHENTICATED,
    "PermissionDenied": Status.PERMISSION_DENIED,
    "ResourceExhausted": Status.RESOURCE_EXHAUSTED,
}


def test_every_error_class_is_exported() -> None:
    assert sorted(cls.__name__ for cls in SILO_ERRORS) == sorted(errors.__all__)


@pytest.mark.parametrize(
    "cls", [c for c in SILO_ERRORS if c is not errors.SiloError], ids=lambda c: c.__name__
)
def test_every_error_class_is_mapped(cls: type[errors.SiloError]) -> None:
    status = status_for(cls)
    assert status is not None, f"{cls.__name__} has no gRPC status in silo/status.py"
    if cls.__name__ in EXPECTED:
        assert status is EXPECTED[cls.__name__]
    else:
        # A class added after this test was written: it must at least keep its family's status.
        family = next(b for b in cls.__mro__[1:] if b.__name__ in EXPECTED)
        assert status is EXPECTED[family.__name__]


def test_table_has_no_catch_all() -> None:
    assert errors.SiloError not in STATUS_OF
    assert Exception not in STATUS_OF
    assert status_for(errors.SiloError) is None
    assert status_for(ValueError) is None
    for cls in STATUS_OF:
        assert issubclass(cls, errors.SiloError) and cls is not errors.SiloError


def test_builtin_bases() -> None:
    assert issubclass(errors.InvalidArgument, ValueError)
    assert issubclass(errors.JobNotFound, LookupError)
    assert issubclass(errors.TaskNotFound, LookupError)
    assert issubclass(errors.Unimplemented, NotImplementedError)
    assert issubclass(errors.Unavailable, ConnectionError)


@pytest.mark.parametrize(
    "cls",
    [c for c in SILO_ERRORS if EXPECTED.get(c.__name__) not in (None, Status.INTERNAL)],
    ids=lambda c: c.__name__,
)
def test_mapped_errors_keep_their_message(cls: type[errors.SiloError]) -> None:
    err = to_grpc_error(cls("priority must be 1..100"), method="Enqueue")
    assert err.status is EXPECTED[cls.__name__]
    assert err.message == "priority must be 1..100"


@pytest.mark.parametrize(
    "exc",
    [errors.InternalError("secret detail"), RuntimeError("secret detail"), KeyError("secret")],
    ids=["InternalError", "RuntimeError", "KeyError"],
)
def test_unknown_errors_are_internal_with_a_fixed_message(
    exc: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    err = to_grpc_error(exc, method="Enqueue")
    assert err.status is Status.INTERNAL
    assert err.message == INTERNAL_MESSAGE
    assert "secret" not in (err.message or "")
    assert any("secret" in (r.exc_text or "") or r.exc_info for r in caplog.records), (
        "the detail of an internal error must go to the log"
    )


def test_a_new_subclass_inherits_its_family_status() -> None:
    class QueueNotFound(errors.NotFound):
        pass

    assert status_for(QueueNotFound) is Status.NOT_FOUND


@pytest.mark.parametrize("status", sorted(set(STATUS_OF.values()), key=lambda s: s.value))
def test_client_side_inverse(status: Status) -> None:
    exc = error_for_status(status, "msg")
    assert exc is not None
    assert status_for(type(exc)) is status
    assert str(exc) == "msg"
    refined = error_for_status(Status.NOT_FOUND, "m", refine=[errors.JobNotFound])
    assert isinstance(refined, errors.JobNotFound)


def test_status_module_exports_the_table() -> None:
    assert "STATUS_OF" in status_table.__all__
