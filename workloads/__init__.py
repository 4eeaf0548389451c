"""Workload adapters (how a target is driven) and the reference corpus of leaky and clean workloads."""
