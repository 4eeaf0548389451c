"""A suppression rule: what it matches (frames, call site, library, type, resource, target), what
growth it tolerates, and until when."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass

ANY_FRAMES = "..."
"""In ``frames``: any number of frames, none included."""

KEYS = ("id", "reason", "owner", "expires", "frames", "call_site", "library", "type", "resource", "target",
        "max_growth")
MATCH_KEYS = ("frames", "call_site", "library", "type", "resource", "target")
TODO_REASON = "TODO: why this growth is accepted (text or an issue link)"
"""The reason :func:`generate_rules` leaves; a rules file still holding it is rejected."""
_MATCH_ALL = frozenset(("*", "*:*"))


@dataclass(frozen=True)
class Rule:
    """One ``[[suppress]]`` table, checked. Every matching key given must hold for a finding."""

    id: str
    """Unique among the rules; the accepted findings name it."""
    reason: str
    """Why the growth is accepted: text or an issue link."""
    source: str
    """The file the rule was read from."""
    line: int
    """The line of its table in that file (1-based)."""
    owner: str | None = None
    expires: datetime.date | None = None
    """The last day the rule applies; None when not given or not a date (see ``expires_text``)."""
    expires_text: str | None = None
    """``expires`` as written when it is not a date ``YYYY-MM-DD``: the rule counts as expired."""
    frames: tuple[str, ...] | None = None
    """``FILE_GLOB:FUNCTION`` patterns, allocation frame first; ``...`` is any number of frames."""
    call_site: str | None = None
    """One ``FILE_GLOB:FUNCTION`` pattern for the finding's first application frame."""
    library: str | None = None
    """``application``, ``stdlib`` or a distribution name."""
    type: str | None = None
    """A glob on the type name (``module.qualname``) of a ``type`` finding."""
    resource: str | None = None
    target: str | None = None
    """A glob on the run's target."""
    max_growth: str | None = None
    """As written, e.g. ``"5 MB/h"``."""
    max_growth_bytes_per_hour: float | None = None
    """Growth tolerated; a finding growing faster is not accepted. None: any growth."""
    finding_ids: frozenset[str] | None = None
    """Not a key of a rules file: the exact findings (by stable id) that ``soak ci --accept-baseline``
    accepts because its baseline run had them. Such a rule is never too broad nor unused."""

    @property
    def names_code(self) -> bool:
        """Whether the rule names code (a frame, a call site, or a type): a rule that does not is too broad."""
        if self.finding_ids is not None:
            return True
        patterns = [*(self.frames or ()), *([self.call_site] if self.call_site else [])]
        # a type finding has no frames: its type is what names its code
        return any(p != ANY_FRAMES and p not in _MATCH_ALL for p in patterns) or self.type not in (None, "*")

    def expired(self, today: datetime.date) -> bool:
        """An unparseable date counts as expired; the rule applies through its ``expires`` day."""
        return self.expires_text is not None or (self.expires is not None and today > self.expires)

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}" if self.line else self.source

    def definition(self) -> dict[str, str | list[str]]:
        """What the rule matches and tolerates, as written (stored with the runs it judged)."""
        keys = {key: getattr(self, key) for key in (*MATCH_KEYS, "max_growth")}
        data: dict[str, str | list[str]] = {key: list(value) if key == "frames" else value for key, value in keys.items()
                                            if value is not None}
        if self.finding_ids is not None:
            data["finding_ids"] = sorted(self.finding_ids)
        return data


BASELINE_RULE = "accept-baseline"
"""The id of the rule ``soak ci --accept-baseline`` makes."""


def baseline_rule(finding_ids: Sequence[str], source: str) -> Rule:
    """A rule accepting exactly the findings ``finding_ids`` (those of a baseline run, ``source``)."""
    return Rule(id=BASELINE_RULE, reason=f"present in the baseline ({source}); accepted by --accept-baseline",
                source=source, line=0, finding_ids=frozenset(finding_ids))

