"""The status table is one table (docs/api.md#status-codes): for every error the core can
return, the gRPC code it puts in batch results (rust/error.rs `Error::status`), the silo.errors
class the native module raises for it, and the gRPC status the server answers for that class
(python/silo/status.py) must agree. A row changed in any of the three places fails here."""

from __future__ import annotations

import pytest
from grpclib.const import Status
from silo import _native, errors
from silo.status import error_for_status, status_for

ROWS = _native.status_table()


def test_the_core_lists_every_error_once() -> None:
    kinds = [class_name for class_name, _ in ROWS]
    assert len(kinds) == len(set(kinds))
    assert "InvalidArgument" in kinds and "InternalError" in kinds


@pytest.mark.parametrize(("class_name", "code"), ROWS, ids=[row[0] for row in ROWS])
def test_core_code_python_class_and_server_status_agree(class_name: str, code: int) -> None:
    cls = getattr(errors, class_name, None)
    assert isinstance(cls, type) and issubclass(cls, errors.SiloError), (
        f"the core raises silo.errors.{class_name}, which is not a SiloError"
    )
    assert status_for(cls) is Status(code), (
        f"{class_name}: the core answers code {code} in batch results, "
        f"the server answers {status_for(cls)} for {class_name}"
    )
    # The client maps the status back onto the same family.
    back = error_for_status(Status(code), "m", refine=[cls])
    assert type(back) is cls


#: Classes the gRPC server raises before a call reaches the core: the token check
#: (python/silo/server/auth.py) and the transport limits (python/silo/server/limits.py).
SERVER_ONLY = {"Unauthenticated", "ResourceExhausted"}


def test_every_concrete_error_class_is_raised_by_the_core() -> None:
    """A leaf class of silo.errors that no core error maps to is dead, or a row is missing."""
    raised = {class_name for class_name, _ in ROWS} | SERVER_ONLY
    leaves = {
        cls.__name__
        for cls in vars(errors).values()
        if isinstance(cls, type)
        and issubclass(cls, errors.SiloError)
        and cls.__module__ == errors.__name__
        and not cls.__subclasses__()
    }
    assert leaves <= raised, f"no core error maps to {sorted(leaves - raised)}"


@pytest.mark.parametrize("class_name", sorted(SERVER_ONLY))
def test_server_only_errors_have_a_status(class_name: str) -> None:
    cls = getattr(errors, class_name)
    status = status_for(cls)
    assert status is not None and status is not Status.INTERNAL
    assert type(error_for_status(status, "m")) is cls
