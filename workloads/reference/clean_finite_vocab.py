"""Clean: a tokenizer that interns words and numbers them, over a fixed vocabulary of 2,000 words."""

import random
import sys
import time

EXPECTED = "clean"
SETTLE_CALLS = 1500  # every word seen by then, almost surely (20 words a call)

_rng = random.Random(3)
_VOCABULARY = [f"word{n:04d}" for n in range(2000)]
_token_ids: dict[str, int] = {}


def step() -> None:
    sentence = " ".join(_rng.choice(_VOCABULARY) for _ in range(20))  # new strings every time
    ids = [_token_ids.setdefault(sys.intern(word), len(_token_ids)) for word in sentence.split()]
    assert len(ids) == 20
    time.sleep(0.0005)
