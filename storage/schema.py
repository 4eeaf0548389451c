"""The schema as sqlite-utils migrations, applied in order and recorded in ``_sqlite_migrations``."""

from __future__ import annotations

from typing import TypedDict

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

MIGRATION_SET = "leaksoak"
migrations = Migrations(MIGRATION_SET)

OUTSIDE_PROBE = "process"
"""The ``snapshots.probe_ms`` entry of the supervisor's own readings (RSS, USS, fds and the rest):
read from outside the measured process, so no pause of it."""


@migrations(name="0001_initial")
def _initial(db: Database) -> None:
    db.executescript(
        """
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            target TEXT NOT NULL,
            mode TEXT NOT NULL DEFAULT 'run',          -- run | watch | ci
            status TEXT NOT NULL,                      -- running | completed | interrupted | failed | killed
            status_reason TEXT,
            verdict TEXT,                              -- leak | suspect | clean | inconclusive
            started_at TEXT NOT NULL,                  -- ISO 8601, UTC
            started_ts REAL NOT NULL,                  -- unix time
            ended_at TEXT,
            duration_s REAL NOT NULL DEFAULT 0,
            planned_duration_s REAL,
            interval_s REAL,
            snapshots INTEGER NOT NULL DEFAULT 0,
            iterations INTEGER NOT NULL DEFAULT 0,
            supervisor_pid INTEGER,
            host TEXT,
            options TEXT                                -- JSON: the options the run was started with
        );
        CREATE INDEX runs_name ON runs(name);

        CREATE TABLE snapshots (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id),
            seq INTEGER NOT NULL,
            t_s REAL NOT NULL,                         -- seconds since the run started
            worker_pid INTEGER,
            iterations INTEGER,
            rss INTEGER, uss INTEGER, fds INTEGER, threads INTEGER,
            traced_bytes INTEGER, tracer_overhead_bytes INTEGER, tracer TEXT, weight REAL,
            gc_objects INTEGER, gc_collections INTEGER, asyncio_tasks INTEGER,
            at_boundary INTEGER,
            pause_ms REAL,                             -- the workload's pause for in-process probes
            probe_ms TEXT,                             -- JSON: per-probe cost in ms
            UNIQUE (run_id, seq)
        );

        CREATE TABLE frames (
            id INTEGER PRIMARY KEY,
            file TEXT NOT NULL,
            line INTEGER NOT NULL,
            function TEXT NOT NULL,
            UNIQUE (file, line, function)
        );
        CREATE TABLE stacks (
            id INTEGER PRIMARY KEY,
            hash TEXT NOT NULL UNIQUE,                 -- of the frames, allocation frame first
            depth INTEGER NOT NULL
        );
        CREATE TABLE stack_frames (
            stack_id INTEGER NOT NULL REFERENCES stacks(id),
            position INTEGER NOT NULL,                 -- 0 = allocation frame
            frame_id INTEGER NOT NULL REFERENCES frames(id),
            PRIMARY KEY (stack_id, position)
        ) WITHOUT ROWID;

        -- Sparse: a row only when a site's value changed since its previous row in the run;
        -- readers carry the last value forward. A site that disappears gets a row of zeros.
        CREATE TABLE site_samples (
            run_id INTEGER NOT NULL,
            stack_id INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            bytes INTEGER NOT NULL,
            count INTEGER NOT NULL,
            PRIMARY KEY (run_id, stack_id, seq)
        ) WITHOUT ROWID;

        CREATE TABLE findings (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id),
            finding_id TEXT NOT NULL,                  -- stable across runs: hash of kind and frames
            rank INTEGER NOT NULL,
            kind TEXT NOT NULL,
            verdict TEXT NOT NULL,
            stack_id INTEGER REFERENCES stacks(id),
            library TEXT,
            resource TEXT,
            growth_bytes_per_hour REAL,
            growth_count_per_hour REAL,
            p_value REAL, q_value REAL, confidence REAL,
            detected_at_s REAL,
            evidence TEXT                              -- JSON: slope interval, warm-up, windows
        );
        CREATE INDEX findings_run ON findings(run_id, rank);

        CREATE TABLE detections (
            run_id INTEGER NOT NULL,
            finding_id TEXT NOT NULL,
            first_detected_at_s REAL NOT NULL,
            PRIMARY KEY (run_id, finding_id)
        ) WITHOUT ROWID;

        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id),
            t_s REAL NOT NULL,
            at TEXT NOT NULL,
            kind TEXT NOT NULL,                        -- worker_start | worker_exit | signal | ...
            message TEXT NOT NULL,
            data TEXT
        );
        CREATE INDEX events_run ON events(run_id, t_s);
        """
    )




@migrations(name="0002_segments_types_views")
def _segments_types_views(db: Database) -> None:
    db.executescript(
        """
        -- A run resumed after its supervisor was killed (or a watched process restarted)
        -- continues the same series in a new segment; each segment has its own worker heap.
        ALTER TABLE snapshots ADD COLUMN segment INTEGER NOT NULL DEFAULT 0;
        -- When the run's current supervisor started: tells a live supervisor from a reused pid.
        ALTER TABLE runs ADD COLUMN supervisor_started_ts REAL;

        CREATE TABLE types (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE                  -- module.qualname
        );
        -- Sparse like site_samples: live gc-tracked objects per type, a row when it changed.
        CREATE TABLE type_samples (
            run_id INTEGER NOT NULL,
            type_id INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            count INTEGER NOT NULL,
            PRIMARY KEY (run_id, type_id, seq)
        ) WITHOUT ROWID;

        -- For Datasette and ad-hoc SQL: findings with their allocation line.
        CREATE VIEW finding_lines AS
        SELECT f.run_id, r.name AS run_name, f.rank, f.verdict, f.kind, f.library,
               fr.file, fr.line, fr.function,
               round(f.growth_bytes_per_hour / 1048576.0, 3) AS growth_mib_per_hour,
               f.growth_count_per_hour, f.p_value, f.detected_at_s, f.finding_id
        FROM findings f
        JOIN runs r ON r.id = f.run_id
        LEFT JOIN stack_frames sf ON sf.stack_id = f.stack_id AND sf.position = 0
        LEFT JOIN frames fr ON fr.id = sf.frame_id;

        -- Growth per library (and stdlib, and the application) over a run's findings.
        CREATE VIEW library_growth AS
        SELECT run_id, coalesce(library, kind) AS library, count(*) AS findings,
               round(sum(growth_bytes_per_hour) / 1048576.0, 3) AS growth_mib_per_hour
        FROM findings GROUP BY run_id, coalesce(library, kind);

        -- Each site's first and last stored value in a run, with its allocation line.
        CREATE VIEW site_growth AS
        SELECT s.run_id, s.stack_id, fr.file, fr.line, fr.function,
               (SELECT bytes FROM site_samples a WHERE a.run_id = s.run_id AND a.stack_id = s.stack_id ORDER BY seq LIMIT 1) AS first_bytes,
               (SELECT bytes FROM site_samples a WHERE a.run_id = s.run_id AND a.stack_id = s.stack_id
                ORDER BY seq DESC LIMIT 1) AS last_bytes,
               count(*) AS changes
        FROM site_samples s
        LEFT JOIN stack_frames sf ON sf.stack_id = s.stack_id AND sf.position = 0
        LEFT JOIN frames fr ON fr.id = sf.frame_id
        GROUP BY s.run_id, s.stack_id;
        """
    )


@migrations(name="0003_pss_cgroup")
def _pss_cgroup(db: Database) -> None:
    db.executescript(
        """
        ALTER TABLE snapshots ADD COLUMN pss INTEGER;
        ALTER TABLE snapshots ADD COLUMN cgroup_bytes INTEGER;     -- memory charged to the cgroup
        ALTER TABLE snapshots ADD COLUMN cgroup_limit INTEGER;     -- its limit, NULL if none
        """
    )


@migrations(name="0004_run_analysis")
def _run_analysis(db: Database) -> None:
    # JSON: what the latest analysis refresh said of the run as a whole: points analysed, series
    # tested, the run length an inconclusive verdict needs, and the memory-limit projection.
    db.execute("ALTER TABLE runs ADD COLUMN analysis TEXT")


@migrations(name="0005_sample_interval")
def _sample_interval(db: Database) -> None:
    # The sampled tracer's mean bytes between samples; NULL when every allocation was traced
    # (tracer 'exact') or none was ('off'). Site bytes and counts are estimates when it is set.
    db.execute("ALTER TABLE snapshots ADD COLUMN sample_interval INTEGER")
    # Live sampled blocks behind a site's estimate (NULL for an exact tracer): its sampling noise.
    db.execute("ALTER TABLE site_samples ADD COLUMN samples INTEGER")


@migrations(name="0006_probe_series")
def _probe_series(db: Database) -> None:
    # Any probe's series, without a schema change per probe: a series is (probe, name, unit), its
    # values sparse like site samples (a row when the value changes; absent from a probe's reading
    # means 0; a probe that failed in a snapshot leaves its values carried forward).
    db.executescript(
        """
        CREATE TABLE probe_series (
            id INTEGER PRIMARY KEY,
            probe TEXT NOT NULL,                       -- e.g. fds, threads, asyncio_tasks
            name TEXT NOT NULL,                        -- e.g. socket, app.worker.poll
            unit TEXT NOT NULL,                        -- bytes | objects | count | seconds
            kind TEXT NOT NULL,                        -- what its growth is reported as: resource, type...
            UNIQUE (probe, name, unit)
        );
        CREATE TABLE probe_values (
            run_id INTEGER NOT NULL REFERENCES runs(id),
            series_id INTEGER NOT NULL REFERENCES probe_series(id),
            seq INTEGER NOT NULL,
            value REAL NOT NULL,
            PRIMARY KEY (run_id, series_id, seq)
        ) WITHOUT ROWID;
        CREATE TABLE probe_evidence (                  -- the latest evidence a probe gave of a series
            run_id INTEGER NOT NULL REFERENCES runs(id),
            series_id INTEGER NOT NULL REFERENCES probe_series(id),
            evidence TEXT NOT NULL,                    -- JSON
            PRIMARY KEY (run_id, series_id)
        ) WITHOUT ROWID;
        """
    )


class RuleRow(TypedDict):
    """A row of ``suppression_rules``: one rule judged against a run's findings (see soak.judging.judgement)."""

    rule_id: str
    source: str
    """Where the rule was read from (``file:line``)."""
    reason: str
    owner: str | None
    expires: str | None
    definition: str
    """JSON: what the rule matches and tolerates, as written."""
    state: str
    """``applied``, ``unused`` or ``expired``."""
    too_broad: int
    accepted: int
    """How many findings it accepted."""
    warnings: str | None
    """JSON: a list of one-line warnings about it."""
    position: int
    """Its place among the rules, first first."""


class AcceptedRow(TypedDict):
    """A row of ``accepted_findings``: a finding a rule accepted."""

    finding_id: str
    rule_id: str
    growth_bytes_per_hour: float | None
    max_growth_bytes_per_hour: float | None



@migrations(name="0007_suppressions")
def _suppressions(db: Database) -> None:
    # The decision of suppression rules (soak.judging.suppressions) on a run's findings, as last judged:
    # the findings table keeps every finding; these say which ones a rule accepted, and the
    # run's verdict is that of the findings that still count.
    db.executescript(
        """
        CREATE TABLE suppression_rules (               -- the rules judged against a run's findings
            run_id INTEGER NOT NULL REFERENCES runs(id),
            rule_id TEXT NOT NULL,
            source TEXT NOT NULL,                      -- file:line it was read from
            reason TEXT NOT NULL,
            owner TEXT,
            expires TEXT,                              -- as written
            definition TEXT NOT NULL,                  -- JSON: what it matches, and its max_growth
            state TEXT NOT NULL,                       -- applied | unused | expired
            too_broad INTEGER NOT NULL DEFAULT 0,
            accepted INTEGER NOT NULL DEFAULT 0,       -- findings it accepted
            warnings TEXT,                             -- JSON: the warnings about it, one line each
            position INTEGER NOT NULL,                 -- its order among the rules (the first match wins)
            PRIMARY KEY (run_id, rule_id)
        ) WITHOUT ROWID;
        CREATE TABLE accepted_findings (               -- a finding a rule accepted: reported apart, not counted
            run_id INTEGER NOT NULL REFERENCES runs(id),
            finding_id TEXT NOT NULL,
            rule_id TEXT NOT NULL,
            growth_bytes_per_hour REAL,                -- the growth the rule accepted
            max_growth_bytes_per_hour REAL,            -- the rule's tolerance, NULL for any rate
            PRIMARY KEY (run_id, finding_id)
        ) WITHOUT ROWID;

        -- finding_lines with the rule that accepted each finding (NULL: it counts)
        DROP VIEW IF EXISTS finding_lines;
        CREATE VIEW finding_lines AS
        SELECT f.run_id, r.name AS run_name, f.rank, f.verdict, f.kind, f.library,
               fr.file, fr.line, fr.function,
               round(f.growth_bytes_per_hour / 1048576.0, 3) AS growth_mib_per_hour,
               f.growth_count_per_hour, f.p_value, f.detected_at_s, f.finding_id,
               a.rule_id AS accepted_by
        FROM findings f
        JOIN runs r ON r.id = f.run_id
        LEFT JOIN stack_frames sf ON sf.stack_id = f.stack_id AND sf.position = 0
        LEFT JOIN frames fr ON fr.id = sf.frame_id
        LEFT JOIN accepted_findings a ON a.run_id = f.run_id AND a.finding_id = f.finding_id;

        -- library_growth over the findings that count, as the reports' growth by library
        DROP VIEW IF EXISTS library_growth;
        CREATE VIEW library_growth AS
        SELECT run_id, coalesce(library, kind) AS library, count(*) AS findings,
               round(sum(growth_bytes_per_hour) / 1048576.0, 3) AS growth_mib_per_hour
        FROM findings f
        WHERE NOT EXISTS (SELECT 1 FROM accepted_findings a WHERE a.run_id = f.run_id AND a.finding_id = f.finding_id)
        GROUP BY run_id, coalesce(library, kind);
        """
    )


@migrations(name="0009_holders")
def _holders(db: Database) -> None:
    # What holds a suspected type's or site's objects (soak.inprocess.probes.holders), searched on suspicion;
    # the latest search per subject: ``type:<module.qualname>``, or ``site`` with its stack.
    db.executescript(
        """
        CREATE TABLE holders (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id),
            subject TEXT NOT NULL,
            stack_id INTEGER REFERENCES stacks(id),
            segment INTEGER NOT NULL,
            seq INTEGER NOT NULL,                      -- the snapshot that searched
            evidence TEXT NOT NULL                     -- JSON: held_by, holder_type, holder_root...
        );
        CREATE INDEX holders_run ON holders(run_id, subject, stack_id);
        """
    )


@migrations(name="0010_process_tree")
def _process_tree(db: Database) -> None:
    # soak watch follows a process tree: each process with an agent is a run of its own, whose
    # parent_run_id is the run of the process watched at the tree's root; pid is the process's.
    db.executescript(
        """
        ALTER TABLE runs ADD COLUMN parent_run_id INTEGER REFERENCES runs(id);
        ALTER TABLE runs ADD COLUMN pid INTEGER;
        CREATE INDEX runs_parent ON runs(parent_run_id);
        """
    )
