"""Native-memory workloads: memory that C code allocates, which the Python tracers cannot see.

``leaky_ctypes_library`` calls a small C library (``libretain.c``, compiled by the workload's
``setup()`` with the system C compiler) through ctypes; ``leaky_ctypes_malloc`` calls libc's
``malloc`` itself through ctypes; ``leaky_numpy_buffers`` keeps arrays whose data numpy's
extension allocates; the ``clean_`` ones free what they take.
"""
