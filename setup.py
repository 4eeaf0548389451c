"""The C extension of the sampled tracer; everything else is declared in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "soak._sampler",
            sources=["soak/_sampler.c"],
            extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
            libraries=["m"],
            # Without a compiler the install still succeeds; --tracer sampled then warns and
            # falls back to exact.
            optional=True,
        )
    ]
)
