"""Workloads that leak resources (threads, files, sockets) and bounded pools of each that don't.

Each step sleeps a little, so that a leak of one resource every tenth call grows by about two a
second: enough for a short soak to judge, few enough that a minute's run stays small.
"""
