"""Workloads whose leaked objects are held by a module global, for the holder chains.

``cache_leak`` names its global on the leaking line; ``handed_list`` appends to a list handed to
it, so that only the holder chain can name the global (``sink._BACKLOG``) that keeps the
objects alive. Each step sleeps a little, like a request handler waiting on I/O, and leaks one
object on a tenth of its calls (about a hundred a second).
"""
