"""Errors that carry their exit code; the CLI turns them into one line on stderr."""

from __future__ import annotations


class SoakError(Exception):
    """Base class: a message for the user and the process exit code that goes with it."""

    exit_code = 3


class BadInput(SoakError):
    """The user asked for something that cannot be done as asked (exit code 2)."""

    exit_code = 2


class InternalFailure(SoakError):
    """leaksoak or the workload process failed (exit code 3)."""

    exit_code = 3


class WorkloadLost(InternalFailure):
    """The worker process died or the workload raised; the run is recorded as failed."""
