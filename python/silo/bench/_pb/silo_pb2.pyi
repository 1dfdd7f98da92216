from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATUS_UNSPECIFIED: _ClassVar[JobStatus]
    JOB_STATUS_SCHEDULED: _ClassVar[JobStatus]
    JOB_STATUS_PENDING: _ClassVar[JobStatus]
    JOB_STATUS_RUNNING: _ClassVar[JobStatus]
    JOB_STATUS_SUCCEEDED: _ClassVar[JobStatus]
    JOB_STATUS_FAILED: _ClassVar[JobStatus]
    JOB_STATUS_CANCELLED: _ClassVar[JobStatus]

class AttemptStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ATTEMPT_STATUS_UNSPECIFIED: _ClassVar[AttemptStatus]
    ATTEMPT_STATUS_RUNNING: _ClassVar[AttemptStatus]
    ATTEMPT_STATUS_SUCCEEDED: _ClassVar[AttemptStatus]
    ATTEMPT_STATUS_FAILED: _ClassVar[AttemptStatus]
    ATTEMPT_STATUS_CANCELLED: _ClassVar[AttemptStatus]

class Overlap(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OVERLAP_ALLOW: _ClassVar[Overlap]
    OVERLAP_SKIP: _ClassVar[Overlap]

class CatchUp(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CATCH_UP_ONE: _ClassVar[CatchUp]
    CATCH_UP_NONE: _ClassVar[CatchUp]
    CATCH_UP_ALL: _ClassVar[CatchUp]
JOB_STATUS_UNSPECIFIED: JobStatus
JOB_STATUS_SCHEDULED: JobStatus
JOB_STATUS_PENDING: JobStatus
JOB_STATUS_RUNNING: JobStatus
JOB_STATUS_SUCCEEDED: JobStatus
JOB_STATUS_FAILED: JobStatus
JOB_STATUS_CANCELLED: JobStatus
ATTEMPT_STATUS_UNSPECIFIED: AttemptStatus
ATTEMPT_STATUS_RUNNING: AttemptStatus
ATTEMPT_STATUS_SUCCEEDED: AttemptStatus
ATTEMPT_STATUS_FAILED: AttemptStatus
ATTEMPT_STATUS_CANCELLED: AttemptStatus
OVERLAP_ALLOW: Overlap
OVERLAP_SKIP: Overlap
CATCH_UP_ONE: CatchUp
CATCH_UP_NONE: CatchUp
CATCH_UP_ALL: CatchUp

class RetryPolicy(_message.Message):
    __slots__ = ("max_retries", "schedule_ms", "initial_backoff_ms", "backoff_multiplier", "max_backoff_ms", "jitter")
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_MS_FIELD_NUMBER: _ClassVar[int]
    INITIAL_BACKOFF_MS_FIELD_NUMBER: _ClassVar[int]
    BACKOFF_MULTIPLIER_FIELD_NUMBER: _ClassVar[int]
    MAX_BACKOFF_MS_FIELD_NUMBER: _ClassVar[int]
    JITTER_FIELD_NUMBER: _ClassVar[int]
    max_retries: int
    schedule_ms: _containers.RepeatedScalarFieldContainer[int]
    initial_backoff_ms: int
    backoff_multiplier: float
    max_backoff_ms: int
    jitter: bool
    def __init__(self, max_retries: _Optional[int] = ..., schedule_ms: _Optional[_Iterable[int]] = ..., initial_backoff_ms: _Optional[int] = ..., backoff_multiplier: _Optional[float] = ..., max_backoff_ms: _Optional[int] = ..., jitter: _Optional[bool] = ...) -> None: ...

class ConcurrencyLimit(_message.Message):
    __slots__ = ("key", "max_concurrency")
    KEY_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    key: str
    max_concurrency: int
    def __init__(self, key: _Optional[str] = ..., max_concurrency: _Optional[int] = ...) -> None: ...

class RateLimit(_message.Message):
    __slots__ = ("key", "limit", "period_ms")
    KEY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PERIOD_MS_FIELD_NUMBER: _ClassVar[int]
    key: str
    limit: int
    period_ms: int
    def __init__(self, key: _Optional[str] = ..., limit: _Optional[int] = ..., period_ms: _Optional[int] = ...) -> None: ...

class EnqueueRequest(_message.Message):
    __slots__ = ("id", "tenant", "queue", "priority", "start_at_ms", "retry_policy", "concurrency_limits", "payload", "metadata", "rate_limits", "unique_key", "unique_for_ms", "retention_ms", "lease_ms", "expire_at_ms")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    START_AT_MS_FIELD_NUMBER: _ClassVar[int]
    RETRY_POLICY_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_LIMITS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMITS_FIELD_NUMBER: _ClassVar[int]
    UNIQUE_KEY_FIELD_NUMBER: _ClassVar[int]
    UNIQUE_FOR_MS_FIELD_NUMBER: _ClassVar[int]
    RETENTION_MS_FIELD_NUMBER: _ClassVar[int]
    LEASE_MS_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_AT_MS_FIELD_NUMBER: _ClassVar[int]
    id: str
    tenant: str
    queue: str
    priority: int
    start_at_ms: int
    retry_policy: RetryPolicy
    concurrency_limits: _containers.RepeatedCompositeFieldContainer[ConcurrencyLimit]
    payload: bytes
    metadata: _containers.ScalarMap[str, str]
    rate_limits: _containers.RepeatedCompositeFieldContainer[RateLimit]
    unique_key: str
    unique_for_ms: int
    retention_ms: int
    lease_ms: int
    expire_at_ms: int
    def __init__(self, id: _Optional[str] = ..., tenant: _Optional[str] = ..., queue: _Optional[str] = ..., priority: _Optional[int] = ..., start_at_ms: _Optional[int] = ..., retry_policy: _Optional[_Union[RetryPolicy, _Mapping]] = ..., concurrency_limits: _Optional[_Iterable[_Union[ConcurrencyLimit, _Mapping]]] = ..., payload: _Optional[bytes] = ..., metadata: _Optional[_Mapping[str, str]] = ..., rate_limits: _Optional[_Iterable[_Union[RateLimit, _Mapping]]] = ..., unique_key: _Optional[str] = ..., unique_for_ms: _Optional[int] = ..., retention_ms: _Optional[int] = ..., lease_ms: _Optional[int] = ..., expire_at_ms: _Optional[int] = ...) -> None: ...

class EnqueueResponse(_message.Message):
    __slots__ = ("id", "deduplicated")
    ID_FIELD_NUMBER: _ClassVar[int]
    DEDUPLICATED_FIELD_NUMBER: _ClassVar[int]
    id: str
    deduplicated: bool
    def __init__(self, id: _Optional[str] = ..., deduplicated: _Optional[bool] = ...) -> None: ...

class EnqueueBatchRequest(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[EnqueueRequest]
    def __init__(self, jobs: _Optional[_Iterable[_Union[EnqueueRequest, _Mapping]]] = ...) -> None: ...

class EnqueueResult(_message.Message):
    __slots__ = ("id", "code", "message", "deduplicated")
    ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DEDUPLICATED_FIELD_NUMBER: _ClassVar[int]
    id: str
    code: int
    message: str
    deduplicated: bool
    def __init__(self, id: _Optional[str] = ..., code: _Optional[int] = ..., message: _Optional[str] = ..., deduplicated: _Optional[bool] = ...) -> None: ...

class EnqueueBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[EnqueueResult]
    def __init__(self, results: _Optional[_Iterable[_Union[EnqueueResult, _Mapping]]] = ...) -> None: ...

class CancelRequest(_message.Message):
    __slots__ = ("id", "tenant")
    ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    id: str
    tenant: str
    def __init__(self, id: _Optional[str] = ..., tenant: _Optional[str] = ...) -> None: ...

class CancelResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LeaseTasksRequest(_message.Message):
    __slots__ = ("worker_id", "max_tasks", "queues", "wait_ms")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_TASKS_FIELD_NUMBER: _ClassVar[int]
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    max_tasks: int
    queues: _containers.RepeatedScalarFieldContainer[str]
    wait_ms: int
    def __init__(self, worker_id: _Optional[str] = ..., max_tasks: _Optional[int] = ..., queues: _Optional[_Iterable[str]] = ..., wait_ms: _Optional[int] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("task_id", "job_id", "tenant", "queue", "priority", "payload", "metadata", "attempt", "heartbeat_interval_ms", "lease_expires_at_ms", "heartbeat_cursor", "is_last_attempt")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    IS_LAST_ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    job_id: str
    tenant: str
    queue: str
    priority: int
    payload: bytes
    metadata: _containers.ScalarMap[str, str]
    attempt: int
    heartbeat_interval_ms: int
    lease_expires_at_ms: int
    heartbeat_cursor: bytes
    is_last_attempt: bool
    def __init__(self, task_id: _Optional[str] = ..., job_id: _Optional[str] = ..., tenant: _Optional[str] = ..., queue: _Optional[str] = ..., priority: _Optional[int] = ..., payload: _Optional[bytes] = ..., metadata: _Optional[_Mapping[str, str]] = ..., attempt: _Optional[int] = ..., heartbeat_interval_ms: _Optional[int] = ..., lease_expires_at_ms: _Optional[int] = ..., heartbeat_cursor: _Optional[bytes] = ..., is_last_attempt: _Optional[bool] = ...) -> None: ...

class LeaseTasksResponse(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[Task]
    def __init__(self, tasks: _Optional[_Iterable[_Union[Task, _Mapping]]] = ...) -> None: ...

class HeartbeatTaskRequest(_message.Message):
    __slots__ = ("task_id", "worker_id", "cursor")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    worker_id: str
    cursor: bytes
    def __init__(self, task_id: _Optional[str] = ..., worker_id: _Optional[str] = ..., cursor: _Optional[bytes] = ...) -> None: ...

class HeartbeatTaskResponse(_message.Message):
    __slots__ = ("cancelled", "lease_expires_at_ms")
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    cancelled: bool
    lease_expires_at_ms: int
    def __init__(self, cancelled: _Optional[bool] = ..., lease_expires_at_ms: _Optional[int] = ...) -> None: ...

class TaskFailure(_message.Message):
    __slots__ = ("code", "message", "data", "non_retryable")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    NON_RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    data: bytes
    non_retryable: bool
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., data: _Optional[bytes] = ..., non_retryable: _Optional[bool] = ...) -> None: ...

class TaskCancelled(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReportTaskOutcomeRequest(_message.Message):
    __slots__ = ("task_id", "worker_id", "result", "failure", "cancelled")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    worker_id: str
    result: bytes
    failure: TaskFailure
    cancelled: TaskCancelled
    def __init__(self, task_id: _Optional[str] = ..., worker_id: _Optional[str] = ..., result: _Optional[bytes] = ..., failure: _Optional[_Union[TaskFailure, _Mapping]] = ..., cancelled: _Optional[_Union[TaskCancelled, _Mapping]] = ...) -> None: ...

class ReportTaskOutcomeResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReportTaskOutcomesRequest(_message.Message):
    __slots__ = ("reports",)
    REPORTS_FIELD_NUMBER: _ClassVar[int]
    reports: _containers.RepeatedCompositeFieldContainer[ReportTaskOutcomeRequest]
    def __init__(self, reports: _Optional[_Iterable[_Union[ReportTaskOutcomeRequest, _Mapping]]] = ...) -> None: ...

class ReportResult(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class ReportTaskOutcomesResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ReportResult]
    def __init__(self, results: _Optional[_Iterable[_Union[ReportResult, _Mapping]]] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("id", "tenant", "include_attempts")
    ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    tenant: str
    include_attempts: bool
    def __init__(self, id: _Optional[str] = ..., tenant: _Optional[str] = ..., include_attempts: _Optional[bool] = ...) -> None: ...

class Attempt(_message.Message):
    __slots__ = ("attempt", "task_id", "worker_id", "status", "started_at_ms", "finished_at_ms", "result", "failure", "heartbeat_cursor")
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    attempt: int
    task_id: str
    worker_id: str
    status: AttemptStatus
    started_at_ms: int
    finished_at_ms: int
    result: bytes
    failure: TaskFailure
    heartbeat_cursor: bytes
    def __init__(self, attempt: _Optional[int] = ..., task_id: _Optional[str] = ..., worker_id: _Optional[str] = ..., status: _Optional[_Union[AttemptStatus, str]] = ..., started_at_ms: _Optional[int] = ..., finished_at_ms: _Optional[int] = ..., result: _Optional[bytes] = ..., failure: _Optional[_Union[TaskFailure, _Mapping]] = ..., heartbeat_cursor: _Optional[bytes] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "tenant", "queue", "priority", "status", "payload", "metadata", "retry_policy", "concurrency_limits", "created_at_ms", "start_at_ms", "updated_at_ms", "next_attempt_at_ms", "attempt_count", "result", "last_failure", "attempts", "waiting_on_keys", "rate_limits", "unique_key", "unique_for_ms", "retention_ms", "lease_ms", "expire_at_ms", "waiting_on_rate_limit", "retained_until_ms")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    RETRY_POLICY_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_LIMITS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    START_AT_MS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_AT_MS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_COUNT_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    LAST_FAILURE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    WAITING_ON_KEYS_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMITS_FIELD_NUMBER: _ClassVar[int]
    UNIQUE_KEY_FIELD_NUMBER: _ClassVar[int]
    UNIQUE_FOR_MS_FIELD_NUMBER: _ClassVar[int]
    RETENTION_MS_FIELD_NUMBER: _ClassVar[int]
    LEASE_MS_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_AT_MS_FIELD_NUMBER: _ClassVar[int]
    WAITING_ON_RATE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    RETAINED_UNTIL_MS_FIELD_NUMBER: _ClassVar[int]
    id: str
    tenant: str
    queue: str
    priority: int
    status: JobStatus
    payload: bytes
    metadata: _containers.ScalarMap[str, str]
    retry_policy: RetryPolicy
    concurrency_limits: _containers.RepeatedCompositeFieldContainer[ConcurrencyLimit]
    created_at_ms: int
    start_at_ms: int
    updated_at_ms: int
    next_attempt_at_ms: int
    attempt_count: int
    result: bytes
    last_failure: TaskFailure
    attempts: _containers.RepeatedCompositeFieldContainer[Attempt]
    waiting_on_keys: _containers.RepeatedScalarFieldContainer[str]
    rate_limits: _containers.RepeatedCompositeFieldContainer[RateLimit]
    unique_key: str
    unique_for_ms: int
    retention_ms: int
    lease_ms: int
    expire_at_ms: int
    waiting_on_rate_limit: str
    retained_until_ms: int
    def __init__(self, id: _Optional[str] = ..., tenant: _Optional[str] = ..., queue: _Optional[str] = ..., priority: _Optional[int] = ..., status: _Optional[_Union[JobStatus, str]] = ..., payload: _Optional[bytes] = ..., metadata: _Optional[_Mapping[str, str]] = ..., retry_policy: _Optional[_Union[RetryPolicy, _Mapping]] = ..., concurrency_limits: _Optional[_Iterable[_Union[ConcurrencyLimit, _Mapping]]] = ..., created_at_ms: _Optional[int] = ..., start_at_ms: _Optional[int] = ..., updated_at_ms: _Optional[int] = ..., next_attempt_at_ms: _Optional[int] = ..., attempt_count: _Optional[int] = ..., result: _Optional[bytes] = ..., last_failure: _Optional[_Union[TaskFailure, _Mapping]] = ..., attempts: _Optional[_Iterable[_Union[Attempt, _Mapping]]] = ..., waiting_on_keys: _Optional[_Iterable[str]] = ..., rate_limits: _Optional[_Iterable[_Union[RateLimit, _Mapping]]] = ..., unique_key: _Optional[str] = ..., unique_for_ms: _Optional[int] = ..., retention_ms: _Optional[int] = ..., lease_ms: _Optional[int] = ..., expire_at_ms: _Optional[int] = ..., waiting_on_rate_limit: _Optional[str] = ..., retained_until_ms: _Optional[int] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("tenant", "queue", "statuses", "metadata", "created_after_ms", "created_before_ms", "page_size", "page_token")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TENANT_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_MS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    queue: str
    statuses: _containers.RepeatedScalarFieldContainer[JobStatus]
    metadata: _containers.ScalarMap[str, str]
    created_after_ms: int
    created_before_ms: int
    page_size: int
    page_token: str
    def __init__(self, tenant: _Optional[str] = ..., queue: _Optional[str] = ..., statuses: _Optional[_Iterable[_Union[JobStatus, str]]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., created_after_ms: _Optional[int] = ..., created_before_ms: _Optional[int] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RestartJobRequest(_message.Message):
    __slots__ = ("id", "tenant")
    ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    id: str
    tenant: str
    def __init__(self, id: _Optional[str] = ..., tenant: _Optional[str] = ...) -> None: ...

class ExpediteJobRequest(_message.Message):
    __slots__ = ("id", "tenant")
    ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    id: str
    tenant: str
    def __init__(self, id: _Optional[str] = ..., tenant: _Optional[str] = ...) -> None: ...

class DeleteJobRequest(_message.Message):
    __slots__ = ("id", "tenant")
    ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    id: str
    tenant: str
    def __init__(self, id: _Optional[str] = ..., tenant: _Optional[str] = ...) -> None: ...

class DeleteJobResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WaitJobRequest(_message.Message):
    __slots__ = ("id", "tenant", "timeout_ms")
    ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    id: str
    tenant: str
    timeout_ms: int
    def __init__(self, id: _Optional[str] = ..., tenant: _Optional[str] = ..., timeout_ms: _Optional[int] = ...) -> None: ...

class ListQueuesRequest(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    def __init__(self, tenant: _Optional[str] = ...) -> None: ...

class QueueStats(_message.Message):
    __slots__ = ("name", "counts", "paused")
    class CountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    name: str
    counts: _containers.ScalarMap[str, int]
    paused: bool
    def __init__(self, name: _Optional[str] = ..., counts: _Optional[_Mapping[str, int]] = ..., paused: _Optional[bool] = ...) -> None: ...

class ListQueuesResponse(_message.Message):
    __slots__ = ("queues",)
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    queues: _containers.RepeatedCompositeFieldContainer[QueueStats]
    def __init__(self, queues: _Optional[_Iterable[_Union[QueueStats, _Mapping]]] = ...) -> None: ...

class BulkJobsRequest(_message.Message):
    __slots__ = ("filter", "limit")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    filter: ListJobsRequest
    limit: int
    def __init__(self, filter: _Optional[_Union[ListJobsRequest, _Mapping]] = ..., limit: _Optional[int] = ...) -> None: ...

class BulkJobsResponse(_message.Message):
    __slots__ = ("matched", "changed", "more")
    MATCHED_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    matched: int
    changed: int
    more: bool
    def __init__(self, matched: _Optional[int] = ..., changed: _Optional[int] = ..., more: _Optional[bool] = ...) -> None: ...

class QueueRef(_message.Message):
    __slots__ = ("tenant", "queue")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    queue: str
    def __init__(self, tenant: _Optional[str] = ..., queue: _Optional[str] = ...) -> None: ...

class Schedule(_message.Message):
    __slots__ = ("tenant", "name", "cron", "interval_ms", "timezone", "job", "paused", "overlap", "catch_up", "next_run_at_ms", "last_job_id")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CRON_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_FIELD_NUMBER: _ClassVar[int]
    CATCH_UP_FIELD_NUMBER: _ClassVar[int]
    NEXT_RUN_AT_MS_FIELD_NUMBER: _ClassVar[int]
    LAST_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    name: str
    cron: str
    interval_ms: int
    timezone: str
    job: EnqueueRequest
    paused: bool
    overlap: Overlap
    catch_up: CatchUp
    next_run_at_ms: int
    last_job_id: str
    def __init__(self, tenant: _Optional[str] = ..., name: _Optional[str] = ..., cron: _Optional[str] = ..., interval_ms: _Optional[int] = ..., timezone: _Optional[str] = ..., job: _Optional[_Union[EnqueueRequest, _Mapping]] = ..., paused: _Optional[bool] = ..., overlap: _Optional[_Union[Overlap, str]] = ..., catch_up: _Optional[_Union[CatchUp, str]] = ..., next_run_at_ms: _Optional[int] = ..., last_job_id: _Optional[str] = ...) -> None: ...

class ScheduleRef(_message.Message):
    __slots__ = ("tenant", "name")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    name: str
    def __init__(self, tenant: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class DeleteScheduleResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListSchedulesRequest(_message.Message):
    __slots__ = ("tenant", "page_size", "page_token")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    page_size: int
    page_token: str
    def __init__(self, tenant: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSchedulesResponse(_message.Message):
    __slots__ = ("schedules", "next_page_token")
    SCHEDULES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    schedules: _containers.RepeatedCompositeFieldContainer[Schedule]
    next_page_token: str
    def __init__(self, schedules: _Optional[_Iterable[_Union[Schedule, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetClusterRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Node(_message.Message):
    __slots__ = ("id", "address", "shards")
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    id: str
    address: str
    shards: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, id: _Optional[str] = ..., address: _Optional[str] = ..., shards: _Optional[_Iterable[int]] = ...) -> None: ...

class Cluster(_message.Message):
    __slots__ = ("nodes", "shard_count", "hash")
    NODES_FIELD_NUMBER: _ClassVar[int]
    SHARD_COUNT_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[Node]
    shard_count: int
    hash: str
    def __init__(self, nodes: _Optional[_Iterable[_Union[Node, _Mapping]]] = ..., shard_count: _Optional[int] = ..., hash: _Optional[str] = ...) -> None: ...

class SessionOpen(_message.Message):
    __slots__ = ("worker_id", "queues", "credits")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    CREDITS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    queues: _containers.RepeatedScalarFieldContainer[str]
    credits: int
    def __init__(self, worker_id: _Optional[str] = ..., queues: _Optional[_Iterable[str]] = ..., credits: _Optional[int] = ...) -> None: ...

class WorkerMessage(_message.Message):
    __slots__ = ("open", "credits", "heartbeat", "outcome")
    OPEN_FIELD_NUMBER: _ClassVar[int]
    CREDITS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    open: SessionOpen
    credits: int
    heartbeat: HeartbeatTaskRequest
    outcome: ReportTaskOutcomeRequest
    def __init__(self, open: _Optional[_Union[SessionOpen, _Mapping]] = ..., credits: _Optional[int] = ..., heartbeat: _Optional[_Union[HeartbeatTaskRequest, _Mapping]] = ..., outcome: _Optional[_Union[ReportTaskOutcomeRequest, _Mapping]] = ...) -> None: ...

class HeartbeatResult(_message.Message):
    __slots__ = ("task_id", "code", "cancelled", "lease_expires_at_ms", "message")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    code: int
    cancelled: bool
    lease_expires_at_ms: int
    message: str
    def __init__(self, task_id: _Optional[str] = ..., code: _Optional[int] = ..., cancelled: _Optional[bool] = ..., lease_expires_at_ms: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class OutcomeResult(_message.Message):
    __slots__ = ("task_id", "code", "message")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    code: int
    message: str
    def __init__(self, task_id: _Optional[str] = ..., code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class ServerMessage(_message.Message):
    __slots__ = ("task", "heartbeat", "outcome")
    TASK_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    task: Task
    heartbeat: HeartbeatResult
    outcome: OutcomeResult
    def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ..., heartbeat: _Optional[_Union[HeartbeatResult, _Mapping]] = ..., outcome: _Optional[_Union[OutcomeResult, _Mapping]] = ...) -> None: ...
