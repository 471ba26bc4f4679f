"""Build hook for the compiled modules: wardgate._rowscan (the DataRow hot loop) and
wardgate.recording._chain (a recording event serialised and hash-chained in one call).

Everything else is declared in pyproject.toml. ``optional=True``: where no C compiler is
available the install still succeeds and wardgate runs its pure-Python path (the same
results, slower; see docs/performance.md).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "wardgate._rowscan",
            ["src/wardgate/_rowscan.c"],
            extra_compile_args=["-O2", "-std=c11"],
            optional=True,
        ),
        Extension(
            "wardgate.recording._chain",
            ["src/wardgate/recording/_chain.c"],
            extra_compile_args=["-O2", "-std=c11"],
            optional=True,
        ),
    ]
)
