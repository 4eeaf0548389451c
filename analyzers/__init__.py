"""Analyzers: pure functions from series to findings. No I/O, no SQL."""

from soak.analyzers.growth import Analysis, Series, SeriesFinding, analyze
from soak.model.thresholds import Thresholds

__all__ = ["Analysis", "Series", "SeriesFinding", "Thresholds", "analyze"]
