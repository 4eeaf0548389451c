"""The supervisor–worker wire format: one JSON object per line, versioned, never pickle.

Requests (supervisor → worker): ``snapshot``, ``stop``.
Replies (worker → supervisor): ``hello``, ``bad_target``, ``failed``, ``snapshot``, ``stopped``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import IO, TypeVar

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 256 * 1024 * 1024

Message = dict[str, object]
"""A received message: a JSON object whose ``v`` is checked and whose ``type`` is a str. Its other
fields are JSON values of whatever type the other side sent: read one through ``typed_field`` or
``object_field``, or pass it on as it came (e.g. to storage)."""

_Value = TypeVar("_Value")


def typed_field(message: Mapping[str, object], key: str, kind: type[_Value]) -> _Value | None:
    """``message[key]`` if it is a ``kind`` (e.g. ``str``), else None: a mistyped field is an absent one."""
    value = message.get(key)
    return value if isinstance(value, kind) else None


def object_field(message: Mapping[str, object], key: str) -> Message | None:
    """``message[key]`` if it is a JSON object, else None."""
    value = message.get(key)
    return value if isinstance(value, dict) else None


class ProtocolError(Exception):
    """A message that is not valid JSON, not an object, too large, too deeply nested, or of another version."""


class Channel:
    """One direction-pair of line-delimited JSON messages; sending is thread-safe."""

    def __init__(self, reader: IO[bytes], writer: IO[bytes], max_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self._reader = reader
        self._writer = writer
        self._max_bytes = max_bytes
        self._send_lock = threading.Lock()

    def send(self, kind: str, **fields: object) -> None:
        line = json.dumps({"v": PROTOCOL_VERSION, "type": kind, **fields}, separators=(",", ":"))
        data = line.encode() + b"\n"
        with self._send_lock:
            self._writer.write(data)
            self._writer.flush()

    def receive(self) -> Message | None:
        """The next message, or None when the other side has closed its end."""
        line = self._reader.readline(self._max_bytes + 1)
        if not line:
            return None
        if len(line) > self._max_bytes:
            raise ProtocolError(f"message larger than {self._max_bytes} bytes")
        try:
            message: object = json.loads(line)
        except ValueError as exc:
            raise ProtocolError(f"not JSON: {exc}") from exc
        except RecursionError as exc:  # json's decoder recurses once per level of nesting
            raise ProtocolError("message nested too deeply") from exc
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise ProtocolError("message is not an object with a type")
        if message.get("v") != PROTOCOL_VERSION:
            raise ProtocolError(f"protocol version {message.get('v')!r}, expected {PROTOCOL_VERSION}")
        return message

    def close(self) -> None:
        for stream in (self._writer, self._reader):
            try:
                stream.close()
            except OSError:
                pass
