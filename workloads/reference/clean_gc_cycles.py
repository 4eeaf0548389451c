"""Clean: every request builds a small tree whose nodes point at their parent (reference cycles); ``gc`` collects them."""

import time

EXPECTED = "clean"


class _Node:
    def __init__(self, parent: "_Node | None", payload: bytes) -> None:
        self.parent = parent
        self.children: list[_Node] = []
        self.payload = payload
        if parent is not None:
            parent.children.append(self)


def step() -> None:
    root = _Node(None, bytes(256))
    for _ in range(8):
        _Node(root, bytes(256))
    assert sum(len(child.payload) for child in root.children) == 8 * 256
    time.sleep(0.0005)
