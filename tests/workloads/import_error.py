import leaksoak_no_such_dependency  # noqa: F401


def step() -> None:
    pass
