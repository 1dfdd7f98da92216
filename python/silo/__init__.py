"""Silo: a durable background-job broker on object storage. Public Python API.

Importing `silo` never loads the native module (silo._native), so the client, config and errors
work before the Rust extension is built; the server path imports it when it starts.
"""

from __future__ import annotations

from silo import errors
from silo.client import Client
from silo.config import ConfigError, ServeConfig
from silo.errors import (
    AlreadyExists,
    FailedPrecondition,
    InternalError,
    InvalidArgument,
    JobAlreadyExists,
    JobNotFound,
    JobTerminal,
    LeaseNotHeld,
    NotFound,
    OutcomeAlreadyRecorded,
    SiloError,
    StoreUnavailable,
    TaskNotFound,
    Unavailable,
    Unimplemented,
)

__all__ = [
    "AlreadyExists",
    "Client",
    "ConfigError",
    "FailedPrecondition",
    "InternalError",
    "InvalidArgument",
    "JobAlreadyExists",
    "JobNotFound",
    "JobTerminal",
    "LeaseNotHeld",
    "NotFound",
    "OutcomeAlreadyRecorded",
    "ServeConfig",
    "SiloError",
    "StoreUnavailable",
    "TaskNotFound",
    "Unavailable",
    "Unimplemented",
    "errors",
]
