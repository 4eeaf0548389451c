"""Analyzers: pure functions from series to findings. No I/O, no SQL."""

from soak.analyzers.growth import Analysis, Finding, Series, analyze
from soak.model.thresholds import Thresholds

__all__ = ["Analysis", "Finding", "Series", "Thresholds", "analyze"]
