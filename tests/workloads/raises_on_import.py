raise RuntimeError("configuration missing: DATABASE_URL")


def step() -> None:
    pass
