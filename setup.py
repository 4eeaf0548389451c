"""The C extensions (the sampled tracer; the C allocator for ctypes under --native); everything else is declared in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "soak.inprocess.probes._sampler",
            sources=["soak/inprocess/probes/_sampler.c"],
            extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
            libraries=["m"],
            # Without a compiler the install still succeeds; --tracer sampled then warns and
            # falls back to exact.
            optional=True,
        ),
        Extension(
            "soak.inprocess.probes._ctypes_allocators",
            sources=["soak/inprocess/probes/_ctypes_allocators.c"],
            extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter",
                                "-Wno-missing-field-initializers", "-fno-optimize-sibling-calls"],
            # Without it, --native does not see ctypes' calls of libc's malloc (soak.inprocess.probes.ctypes_allocators).
            optional=True,
        ),
    ]
)
