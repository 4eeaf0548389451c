"""Probes: what is measured. In-process probes run in the worker (or agent); process probes in the supervisor."""
