"""Builds seqjax's optional CPU kernel, the extension ``seqjax.kernels._recurrent``.

Everything else about the package is in ``pyproject.toml``; this file exists because the
extension needs two things decided at build time: the XLA FFI headers, which jaxlib ships
(``jaxlib/include``, a build requirement in ``pyproject.toml``), and the compiler flags.
The extension is optional: without a C++ compiler or the headers, the build goes on
without it and seqjax runs its LSTM layers on the fused XLA path
(``seqjax.kernels.cpu.why_unavailable()`` says why).

``SEQJAX_CPU_ARCH`` sets the instruction set (``-march``): ``native`` by default, since the
kernel is compiled where it is installed; ``x86-64-v3`` or similar for a wheel meant for
other machines; an empty value for the compiler's default. A kernel compiled for
instructions the running CPU lacks refuses to import (seqjax then takes its XLA paths).
The kernel is Linux-only (its thread pool reads the process's CPU affinity).
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup


def _ffi_include() -> str | None:
    try:
        import jaxlib
    except ImportError:
        return None
    path = os.path.join(os.path.dirname(jaxlib.__file__), "include")
    return path if os.path.isfile(os.path.join(path, "xla", "ffi", "api", "ffi.h")) else None


def _extensions() -> list[Extension]:
    include = _ffi_include()
    if not sys.platform.startswith("linux"):  # the thread pool uses Linux's affinity calls
        print("seqjax: building without the CPU kernel (Linux only)", file=sys.stderr)
        return []
    if include is None:
        print("seqjax: building without the CPU kernel (no XLA FFI headers)", file=sys.stderr)
        return []
    arch = os.environ.get("SEQJAX_CPU_ARCH", "native")
    flags = ["-std=c++17", "-O3", "-fvisibility=hidden"]
    if arch:
        flags.append(f"-march={arch}")
    return [
        Extension(
            "seqjax.kernels._recurrent",
            sources=["seqjax/kernels/csrc/recurrent.cc"],
            include_dirs=[include],
            language="c++",
            extra_compile_args=flags,
            extra_link_args=["-pthread"],
            optional=True,  # a failed build leaves the fused XLA path, not a failed install
        )
    ]


setup(ext_modules=_extensions())
