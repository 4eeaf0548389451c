import pytest

from soak.durations import format_duration, parse_duration, parse_size
from soak.errors import BadInput


@pytest.mark.parametrize(
    "text, seconds",
    [("90s", 90), ("10m", 600), ("8h", 28800), ("1h30m", 5400), ("250ms", 0.25), ("1.5s", 1.5), ("45", 45), ("1d", 86400)],
)
def test_parses_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "ten minutes", "10x", "h", "-5s", "0s", "1h 30m", "30m1h2"])
def test_rejects_non_durations(text: str) -> None:
    with pytest.raises(BadInput) as info:
        parse_duration(text)
    assert info.value.exit_code == 2


def test_formats_durations() -> None:
    assert format_duration(0.25) == "0.25s"
    assert format_duration(59) == "59s"
    assert format_duration(725) == "12m05s"
    assert format_duration(5400) == "1h30m"


@pytest.mark.parametrize("text, size", [("2GiB", 2 * 1024**3), ("512MiB", 512 * 1024**2), ("1.5G", 1_500_000_000), ("4096", 4096)])
def test_parses_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "2 parsecs", "0", "-1GiB"])
def test_rejects_non_sizes(text: str) -> None:
    with pytest.raises(BadInput):
        parse_size(text)
