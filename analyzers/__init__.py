"""Analyzers: pure functions from series to findings. No I/O, no SQL."""

from soak.analyzers.growth import Analysis, Finding, Series, Thresholds, analyze

__all__ = ["Analysis", "Finding", "Series", "Thresholds", "analyze"]
