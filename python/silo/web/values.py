"""How the UI shows opaque bytes (payloads, results, failure data, heartbeat cursors): as pretty
JSON when they parse as JSON, as text when they are UTF-8, else as hex with a size; values
larger than the page shows are cut, and the page links to the whole value (docs/ui.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["HEX_LIMIT", "TEXT_LIMIT", "Shown", "human_size", "show"]

#: Most characters of JSON or text a page shows of one value.
TEXT_LIMIT: Final = 64 * 1024
#: Most bytes a page shows of a binary value as hex (16 per line).
HEX_LIMIT: Final = 4 * 1024

Kind = Literal["empty", "json", "text", "hex"]


@dataclass(frozen=True, slots=True)
class Shown:
    """A value as the page shows it: its kind, the text to show, its full size in bytes, and
    whether the text is cut (the page then links to the download)."""

    kind: Kind
    text: str
    size: int
    truncated: bool

    @property
    def size_text(self) -> str:
        return human_size(self.size)


def human_size(n: int) -> str:
    """`n` bytes for a reader: 512 B, 1.5 KiB, 3.0 MiB."""
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.1f} {unit}"


def show(data: bytes) -> Shown:
    """How to show `data` (see the module doc). JSON is recognised only in a value small
    enough to show whole; a larger one is shown as text."""
    if not data:
        return Shown("empty", "", 0, False)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return Shown("hex", hex_dump(data[:HEX_LIMIT]), len(data), len(data) > HEX_LIMIT)
    if len(text) <= TEXT_LIMIT:
        pretty = _pretty_json(text)
        if pretty is not None and len(pretty) <= TEXT_LIMIT:
            return Shown("json", pretty, len(data), False)
        return Shown("text", text, len(data), False)
    return Shown("text", text[:TEXT_LIMIT], len(data), True)


def _pretty_json(text: str) -> str | None:
    stripped = text.strip()
    # Only objects, arrays and strings: a bare number or `true` reads better as text.
    if not stripped or stripped[0] not in '{["':
        return None
    try:
        value = json.loads(stripped)
    except ValueError:
        return None
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


def hex_dump(data: bytes) -> str:
    """`data` as lines of offset, 16 hex bytes and their printable ASCII (like `xxd`)."""
    lines = []
    for offset in range(0, len(data), 16):
        chunk = data[offset : offset + 16]
        hex_part = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        lines.append(f"{offset:08x}  {hex_part:<47}  {text}")
    return "\n".join(lines)
