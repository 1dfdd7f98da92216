"""A grpclib codec that hands Silo's requests and replies through as raw protobuf bytes.

Why: decoding with betterproto costs far more than the broker's durable write
(docs/architecture.md#the-wire-path), so the server never decodes Silo messages; the native
module does. Methods whose request/reply type is `RawMessage` get the encoded bytes as-is; every
other message type (the health service) goes through grpclib's ProtoCodec.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import DecodeError
from grpclib.const import Status
from grpclib.encoding.base import CodecBase
from grpclib.encoding.proto import ProtoCodec
from grpclib.exceptions import GRPCError

from silo.config import MAX_MESSAGE_BYTES

__all__ = ["MAX_MESSAGE_BYTES", "PassthroughCodec", "RawMessage"]


class RawMessage:
    """Marker message type: the handler receives and sends the encoded `bytes` unchanged."""


class PassthroughCodec(CodecBase):
    """Passes `RawMessage` payloads through as bytes and delegates the rest to ProtoCodec.

    Inbound messages over `max_message_bytes` fail with RESOURCE_EXHAUSTED (the server refuses
    them earlier, from their length prefix: limits.py; this bounds what a client accepts). A
    message of another type that does not decode (a health check request) is INVALID_ARGUMENT
    naming `request`, as the core answers for Silo's messages, instead of grpclib's UNKNOWN and
    a logged traceback.
    """

    __content_subtype__ = "proto"

    def __init__(self, *, max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self._proto = ProtoCodec()
        self._max_message_bytes = max_message_bytes

    def encode(self, message: Any, message_type: Any) -> bytes:
        """Encode `message`; a RawMessage reply must already be `bytes`."""
        if message_type is RawMessage:
            if not isinstance(message, bytes):
                raise TypeError(f"a raw reply must be bytes, not {type(message).__name__}")
            return message
        return self._proto.encode(message, message_type)

    def decode(self, data: bytes, message_type: Any) -> Any:
        """Decode `data`; a RawMessage request comes back as the bytes themselves."""
        if len(data) > self._max_message_bytes:
            raise GRPCError(
                Status.RESOURCE_EXHAUSTED,
                f"message of {len(data)} bytes exceeds the limit of "
                f"{self._max_message_bytes} bytes",
            )
        if message_type is RawMessage:
            return bytes(data)
        try:
            return self._proto.decode(data, message_type)
        except DecodeError as exc:
            raise GRPCError(
                Status.INVALID_ARGUMENT, f"request: malformed protobuf: {exc}"
            ) from None
