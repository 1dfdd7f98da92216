"""How a task's arguments and return value become a job's payload and result bytes.

A `Serializer` turns a value into bytes and back. `JSON` (the default) writes compact UTF-8
JSON, so jobs stay readable in the web UI and workers in other languages can read them;
`PICKLE` carries any picklable Python value between Python programs that trust each other
(unpickling runs code: never use it on payloads from untrusted producers).

A task's payload is the serialized object `{"args": [...], "kwargs": {...}}`; its result is the
serialized return value.
"""

from __future__ import annotations

import json
import json.scanner
import pickle
from typing import Any, Final, Protocol, cast, runtime_checkable

__all__ = ["JSON", "PICKLE", "JsonSerializer", "PickleSerializer", "Serializer"]


@runtime_checkable
class Serializer(Protocol):
    """Turns values into bytes (`dumps`) and back (`loads`); `loads(dumps(v))` equals `v`
    for the values the serializer supports. `dumps` raises TypeError or ValueError for a value
    it cannot write."""

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


class JsonSerializer:
    """Compact UTF-8 JSON (the standard library's `json`): dicts, lists, str, int, float, bool,
    None. A tuple comes back as a list."""

    def dumps(self, value: Any) -> bytes:
        if value is None:  # what most tasks return: no encoder needed
            return b"null"
        return _ENCODER.encode(value).encode()

    def loads(self, data: bytes) -> Any:
        # Decoding the text first and scanning it with the decoder's C scanner skips the work
        # `json.loads(bytes)` does per call in Python (guessing the encoding, matching leading
        # and trailing blanks): about 6 of its 7.5 µs for a small payload.
        try:
            text = data.decode()
        except UnicodeDecodeError:  # UTF-16 or -32 JSON: json.loads tells them apart
            return json.loads(data)
        try:
            value, end = _SCAN(text, 0)
        except StopIteration:  # blanks first, or not JSON: json.loads says which
            return json.loads(text)
        if end != len(text):  # blanks or more after the value
            return json.loads(text)
        return value


#: One encoder for every call (json.dumps with options builds an encoder per call), and the
#: scanner of a default decoder (the C one when the interpreter has it), as json.loads uses.
_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_SCAN: Final = json.scanner.make_scanner(cast(Any, json.JSONDecoder()))


class PickleSerializer:
    """Python's pickle at its highest protocol: any picklable value. Only between programs
    that trust each other."""

    def dumps(self, value: Any) -> bytes:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)

    def loads(self, data: bytes) -> Any:
        return pickle.loads(data)


JSON: Final[Serializer] = JsonSerializer()
PICKLE: Final[Serializer] = PickleSerializer()
