from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Stats(_message.Message):
    __slots__ = ("object_store_requests", "settings", "rss_bytes", "gauges", "shards")
    class ObjectStoreRequestsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class SettingsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class GaugesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    OBJECT_STORE_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    GAUGES_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    object_store_requests: _containers.ScalarMap[str, int]
    settings: _containers.ScalarMap[str, str]
    rss_bytes: int
    gauges: _containers.ScalarMap[str, int]
    shards: _containers.RepeatedCompositeFieldContainer[ShardStats]
    def __init__(self, object_store_requests: _Optional[_Mapping[str, int]] = ..., settings: _Optional[_Mapping[str, str]] = ..., rss_bytes: _Optional[int] = ..., gauges: _Optional[_Mapping[str, int]] = ..., shards: _Optional[_Iterable[_Union[ShardStats, _Mapping]]] = ...) -> None: ...

class ShardStats(_message.Message):
    __slots__ = ("shard", "gauges")
    class GaugesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    SHARD_FIELD_NUMBER: _ClassVar[int]
    GAUGES_FIELD_NUMBER: _ClassVar[int]
    shard: int
    gauges: _containers.ScalarMap[str, int]
    def __init__(self, shard: _Optional[int] = ..., gauges: _Optional[_Mapping[str, int]] = ...) -> None: ...

class SetFaultsRequest(_message.Message):
    __slots__ = ("error_rate", "added_latency_ms", "stall")
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    ADDED_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    STALL_FIELD_NUMBER: _ClassVar[int]
    error_rate: float
    added_latency_ms: int
    stall: bool
    def __init__(self, error_rate: _Optional[float] = ..., added_latency_ms: _Optional[int] = ..., stall: _Optional[bool] = ...) -> None: ...

class SetFaultsResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetConcurrencyKeyRequest(_message.Message):
    __slots__ = ("tenant", "key")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    key: str
    def __init__(self, tenant: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class ConcurrencyKeyState(_message.Message):
    __slots__ = ("limit", "holders", "reserved", "waiters")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    HOLDERS_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    WAITERS_FIELD_NUMBER: _ClassVar[int]
    limit: int
    holders: _containers.RepeatedScalarFieldContainer[str]
    reserved: int
    waiters: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, limit: _Optional[int] = ..., holders: _Optional[_Iterable[str]] = ..., reserved: _Optional[int] = ..., waiters: _Optional[_Iterable[str]] = ...) -> None: ...

class GetRateLimitRequest(_message.Message):
    __slots__ = ("tenant", "key")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    key: str
    def __init__(self, tenant: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class RateLimitState(_message.Message):
    __slots__ = ("limit", "period_ms", "tokens", "reserved", "waiters", "next_token_at_ms")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PERIOD_MS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    WAITERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_TOKEN_AT_MS_FIELD_NUMBER: _ClassVar[int]
    limit: int
    period_ms: int
    tokens: float
    reserved: int
    waiters: _containers.RepeatedScalarFieldContainer[str]
    next_token_at_ms: int
    def __init__(self, limit: _Optional[int] = ..., period_ms: _Optional[int] = ..., tokens: _Optional[float] = ..., reserved: _Optional[int] = ..., waiters: _Optional[_Iterable[str]] = ..., next_token_at_ms: _Optional[int] = ...) -> None: ...
