"""The finding: what analysis produces, storage saves, judgement and suppression rules read, and
every report renders. One field list, with its row of the ``findings`` table beside it."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypedDict

Evidence = dict[str, Any]
"""What the analyzers and the probes said of a finding's series: its slope and interval, the
windows and warm-up, a holder chain, and whatever its probe adds (the function that created a
thread, a native site's frames). Open-ended on purpose: a new probe brings its own keys without
a schema change, and the presenters read the keys they know."""


@dataclass(frozen=True)
class Frame:
    """One frame of a stack."""

    file: str
    """The source file; for a native frame without a source line, the shared object."""
    line: int
    """0 when there is none (a native frame without debug information)."""
    function: str
    """The qualified name: ``Class.method``."""

    def as_dict(self) -> dict[str, str | int]:
        return {"file": self.file, "line": self.line, "function": self.function}

    @classmethod
    def of(cls, frame: Mapping[str, Any]) -> Frame:
        """A frame from its plain form ``{"file", "line", "function"}`` (stored evidence, a pipe)."""
        return cls(frame["file"], frame["line"], frame["function"])


# --- what a finding is about: the series that analysis tested ----------------------------------


@dataclass(frozen=True)
class SiteKey:
    """The live bytes allocated at one stack (an allocation tracer ran)."""

    stack_id: int
    """The stack in storage, allocation frame first."""
    kind: ClassVar[Literal["site"]] = "site"


@dataclass(frozen=True)
class LibraryKey:
    """The sum of the sites inside one library reached from one application line (soak.analyzers.rollup)."""

    library: str
    """``stdlib`` or a distribution name."""
    call_site: Frame
    """The application line the library was called from."""
    kind: ClassVar[Literal["library"]] = "library"


@dataclass(frozen=True)
class ProcessKey:
    """The measured process's memory: its RSS when no allocation tracer ran (``rss``), or the RSS
    that the traced heap does not explain (``unexplained``)."""

    resource: str
    kind: ClassVar[Literal["process"]] = "process"


@dataclass(frozen=True)
class ProbeKey:
    """One series of a probe, judged in its own unit: a ``resource`` count (open fds of a kind,
    threads of a function), a ``type``'s live objects, a ``native`` site's bytes, or an ``async``
    share of time."""

    kind: str
    probe: str
    """The probe's name (``fds``, ``threads``, ``types``, ``native``, ``event_loop``, ...)."""
    series: str
    """The series' name within the probe: a kind of fd, a type's ``module.qualname``, a site."""
    unit: str
    """``bytes``, ``count``, ``objects``, ``seconds``..."""


FindingKey = SiteKey | LibraryKey | ProcessKey | ProbeKey
"""The series a finding is about, as analysis keys the series it tests."""


def key_as_json(key: FindingKey) -> dict[str, Any]:
    """``key`` as plain JSON data (for the pipe from an analysis process); see :func:`key_from_json`."""
    if isinstance(key, LibraryKey):
        return {"kind": key.kind, "library": key.library, "call_site": key.call_site.as_dict()}
    if isinstance(key, ProbeKey):
        return {"kind": key.kind, "probe": key.probe, "series": key.series, "unit": key.unit}
    if isinstance(key, SiteKey):
        return {"kind": key.kind, "stack_id": key.stack_id}
    return {"kind": key.kind, "resource": key.resource}


def key_from_json(data: Mapping[str, Any]) -> FindingKey:
    """The key that :func:`key_as_json` gave ``data`` of."""
    kind = data["kind"]
    if kind == SiteKey.kind:
        return SiteKey(int(data["stack_id"]))
    if kind == LibraryKey.kind:
        return LibraryKey(data["library"], Frame.of(data["call_site"]))
    if kind == ProcessKey.kind:
        return ProcessKey(data["resource"])
    return ProbeKey(kind, data["probe"], data["series"], data["unit"])


# --- the finding ---------------------------------------------------------------------------------


class FindingColumns(TypedDict):
    """A finding's row of the ``findings`` table (storage adds ``run_id``, ``rank`` and ``detected_at_s``)."""

    finding_id: str
    kind: str
    verdict: str
    stack_id: int | None
    library: str | None
    resource: str | None
    growth_bytes_per_hour: float | None
    growth_count_per_hour: float | None
    p_value: float | None
    q_value: float | None
    confidence: float | None
    evidence: str
    """JSON: the evidence and the call site, which has no column of its own."""


class StoredFinding(FindingColumns):
    """A row of the ``findings`` table as read back."""

    id: int
    run_id: int
    rank: int
    """0 for the most severe finding of the run."""
    detected_at_s: float | None


@dataclass(frozen=True)
class Finding:
    """One finding: a series that grows (or, for ``async``, a share of time over its threshold),
    where in the code, and how sure the analysis is."""

    finding_id: str
    """Stable across runs and machines: the same leak in another run has the same id."""
    kind: str
    """``site``, ``library``, ``process``, ``native``, ``resource``, ``type`` or ``async``."""
    verdict: str
    """``leak`` or ``suspect``."""
    traceback: list[Frame]
    """Allocation frame first (for an ``async`` finding, the blocking or submitting call first);
    empty for a series without a stack (a process's memory, a resource, a type)."""
    library: str | None
    """Who the first frame belongs to: ``application``, ``stdlib`` or a distribution (for a
    ``native`` site, the shared object's); None without frames."""
    call_site: Frame | None
    """The first application frame, when the first frame is in a library or the stdlib."""
    growth_bytes_per_hour: float | None
    """For a series in bytes; 0 for one in another unit (its rate is ``growth_count_per_hour``)."""
    growth_count_per_hour: float | None
    """Objects (or a probe's count) per hour, when the series counts them."""
    p_value: float | None
    q_value: float | None
    """The p-value adjusted for the false discovery rate over every series tested; None for a
    share of time against a threshold (``async``), which is not a test."""
    confidence: float | None
    """1 − q."""
    detected_at_s: float | None
    """Seconds from the start of the run to the refresh that first found it; None until stored."""
    resource: str | None
    """What a series without a stack counts: the probe (``fds``, ``threads``, ``types``, ...) or,
    for a ``process`` finding, ``rss`` or ``unexplained``."""
    evidence: Evidence = field(default_factory=dict)
    stack_id: int | None = None
    """The allocation site's stack in storage (kinds ``site`` and ``library``), for reading its series."""

    @property
    def where(self) -> Frame | None:
        """The first frame of the traceback."""
        return self.traceback[0] if self.traceback else None

    @property
    def type(self) -> str | None:
        """The type (``module.qualname``) whose live objects a ``type`` finding counts; None for other kinds."""
        series = self.evidence.get("series")
        return series if self.kind == "type" and isinstance(series, str) else None

    def row(self) -> FindingColumns:
        """The finding as the ``findings`` table stores it (its traceback is its stack's, or in its evidence)."""
        call_site = self.call_site.as_dict() if self.call_site else None
        return FindingColumns(
            finding_id=self.finding_id, kind=self.kind, verdict=self.verdict, stack_id=self.stack_id,
            library=self.library, resource=self.resource, growth_bytes_per_hour=self.growth_bytes_per_hour,
            growth_count_per_hour=self.growth_count_per_hour, p_value=self.p_value, q_value=self.q_value,
            confidence=self.confidence, evidence=json.dumps({**self.evidence, "call_site": call_site}),
        )

    @classmethod
    def from_row(cls, row: Mapping[str, Any], frames: Sequence[Frame] = ()) -> Finding:
        """A finding read back from its row (a :class:`StoredFinding`, or :meth:`row`'s) and its stack's ``frames``."""
        evidence: Evidence = json.loads(row["evidence"]) if row["evidence"] else {}
        call_site = evidence.pop("call_site", None)
        # a finding with a stack of its own that is not an allocation site's carries it in its
        # evidence: an async finding under "frames", a native site (native frames, then Python's)
        # under "traceback"
        traceback = list(frames) or [Frame.of(f) for f in evidence.get("frames") or evidence.get("traceback") or []]
        return cls(
            finding_id=row["finding_id"], kind=row["kind"], verdict=row["verdict"], traceback=traceback,
            library=row["library"], call_site=Frame.of(call_site) if call_site else None,
            growth_bytes_per_hour=row["growth_bytes_per_hour"], growth_count_per_hour=row["growth_count_per_hour"],
            p_value=row["p_value"], q_value=row["q_value"], confidence=row["confidence"],
            detected_at_s=row.get("detected_at_s"), resource=row["resource"], evidence=evidence, stack_id=row["stack_id"],
        )
