import io

import pytest

from soak.inprocess.protocol import PROTOCOL_VERSION, Channel, ProtocolError, object_field, typed_field


def _channel(data: bytes) -> Channel:
    return Channel(io.BytesIO(data), io.BytesIO())


def test_round_trip_is_one_json_line_with_a_version() -> None:
    out = io.BytesIO()
    Channel(io.BytesIO(), out).send("snapshot", seq=3, sites=[[1, 100, 2]])
    line = out.getvalue()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    message = _channel(line).receive()
    assert message == {"v": PROTOCOL_VERSION, "type": "snapshot", "seq": 3, "sites": [[1, 100, 2]]}


def test_end_of_stream_is_none() -> None:
    assert _channel(b"").receive() is None


@pytest.mark.parametrize(
    "line, words",
    [(b"not json\n", "not JSON"), (b"[1, 2]\n", "not an object"), (b'{"v": 99, "type": "hello"}\n', "protocol version")],
)
def test_bad_messages_are_refused(line: bytes, words: str) -> None:
    with pytest.raises(ProtocolError, match=words):
        _channel(line).receive()


def test_a_field_of_the_wrong_type_reads_as_absent() -> None:
    line = b'{"v": 1, "type": "hello", "application_root": 7, "where": {"file": "a.py"}, "seq": "3"}\n'
    message = _channel(line).receive()
    assert message is not None
    assert typed_field(message, "application_root", str) is None
    assert typed_field(message, "type", str) == "hello"
    assert typed_field(message, "seq", int) is None and typed_field(message, "missing", int) is None
    assert object_field(message, "where") == {"file": "a.py"}
    assert object_field(message, "type") is None
