import pytest
from conftest import REFERENCE, TEST_WORKLOADS

from soak.errors import BadInput
from soak.inprocess.targets import BadTarget, load_target, parse_target


def test_parses_file_and_module_targets() -> None:
    spec = parse_target(f"{REFERENCE / 'leaky_dict_cache.py'}:step")
    assert spec.path == str(REFERENCE / "leaky_dict_cache.py") and spec.function == "step"
    spec = parse_target("soak.workloads.reference.clean_churn:step")
    assert spec.module == "soak.workloads.reference.clean_churn" and spec.path is None


@pytest.mark.parametrize("text", ["nofunction", "mod:", ":func", "a b:func", "mod:not-a-name", "missing/file.py:step"])
def test_rejects_malformed_targets(text: str) -> None:
    with pytest.raises(BadInput):
        parse_target(text)


def test_loads_sync_and_async_targets_with_hooks() -> None:
    loaded = load_target(parse_target(f"{TEST_WORKLOADS / 'setup_teardown.py'}:step"))
    assert not loaded.is_async and loaded.setup is not None and loaded.teardown is not None
    loaded = load_target(parse_target("soak.workloads.reference.clean_async_fanout:step"))
    assert loaded.is_async and loaded.setup is None


@pytest.mark.parametrize(
    "target, words",
    [
        ("import_error.py:step", "leaksoak_no_such_dependency"),
        ("syntax_error.py:step", "SyntaxError"),
        ("not_callable.py:step", "not callable"),
        ("sleeper.py:nope", "no function 'nope'"),
    ],
)
def test_bad_targets_name_the_problem(target: str, words: str) -> None:
    with pytest.raises(BadTarget, match=words):
        load_target(parse_target(str(TEST_WORKLOADS / target)))


def test_missing_module_is_bad_input() -> None:
    with pytest.raises(BadTarget, match="no module named"):
        load_target(parse_target("leaksoak_missing_pkg.handlers:step"))


def test_user_exception_on_import_propagates() -> None:
    with pytest.raises(RuntimeError, match="DATABASE_URL"):
        load_target(parse_target(f"{TEST_WORKLOADS / 'raises_on_import.py'}:step"))
