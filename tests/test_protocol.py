import io

import pytest

from soak.protocol import PROTOCOL_VERSION, Channel, ProtocolError


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
