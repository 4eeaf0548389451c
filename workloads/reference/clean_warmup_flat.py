"""Clean after warm-up: a template cache fills during the first 6,000 requests (one template per route and locale),
then every request hits it."""

import itertools
import time

EXPECTED = "clean"
SETTLE_CALLS = 6000  # every template cached

ROUTES, LOCALES = 300, 20
_requests = itertools.count()
_templates: dict[tuple[int, int], str] = {}


def step() -> None:
    n = next(_requests)
    key = (n % ROUTES, n // ROUTES % LOCALES)  # every key by request 6,000, then round again
    template = _templates.get(key)
    if template is None:
        template = _templates[key] = f"<main data-route='{key[0]}' lang='{key[1]}'>{{body}}</main>" + " " * 300
    _ = template.format(body="ok")
    time.sleep(0.0005)
