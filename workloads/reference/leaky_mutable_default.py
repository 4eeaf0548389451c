"""Leaky: a validator with a mutable default argument (``errors=[]``), so every invalid form's errors pile up in one list."""

import itertools
import time

from soak.workloads.reference._rates import LeakRate

EXPECTED = "leak"

_form_ids = itertools.count()
_invalid = LeakRate(0.3)  # the share of forms without an email (LEAKSOAK_LEAK_SCALE)


def _validate(form: dict[str, str], errors: list[str] = []) -> list[str]:  # noqa: B006 - the bug on show
    if not form["email"]:
        errors.append(f"form {form['id']}: the email address is required; please enter one and submit again")  # LEAK
    return errors


def step() -> None:
    form_id = next(_form_ids)
    form = {"id": str(form_id), "email": "" if _invalid() else "someone@example.org"}
    errors = _validate(form)
    _ = "400 Bad Request" if errors else "200 OK"
    time.sleep(0.0005)
