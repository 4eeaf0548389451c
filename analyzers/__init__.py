"""Analyzers: pure functions from series to findings. No I/O, no SQL."""

from soak.analyzers.growth import Analysis, Series, SeriesFinding, Thresholds, analyze

__all__ = ["Analysis", "Series", "SeriesFinding", "Thresholds", "analyze"]
