"""Builds and loads the compiled MSDeformAttn kernels (``csrc/ms_deform_attn``).

The kernels are loaded once per process, from the first of:

1. a library prebuilt by ``MASK2FORMER_BUILD_EXT=1 pip install -e . --no-build-isolation``
   (``mask2former/_msda_C*.so``);
2. a just-in-time build with ``torch.utils.cpp_extension.load`` (ninja), cached under
   ``TORCH_EXTENSIONS_DIR`` (default ``~/.cache/torch_extensions``). The CUDA source is added
   when torch sees a GPU and ``nvcc`` is found.

A failure is reported by one warning that says why; callers then use the PyTorch reference.
"""

from __future__ import annotations

import importlib.machinery
import logging
import shutil
import subprocess
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from mask2former.utils.shipped_files import shipped_path

logger = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parents[1]
# A wheel's copy of csrc/ or the checkout's (the missing-sources error names the latter).
SOURCE_DIR = shipped_path("csrc/ms_deform_attn") or PACKAGE_DIR.parent / "csrc" / "ms_deform_attn"
CPU_SOURCES = ("ms_deform_attn.cpp", "cpu/ms_deform_attn_cpu.cpp")
CUDA_SOURCES = ("cuda/ms_deform_attn_cuda.cu",)
# Portable flags only (no -march=native): the build cache may be shared between machines.
EXTRA_CFLAGS = ("-O3",)
EXTRA_CUDA_CFLAGS = ("-O3",)
CUDA_DEFINE = "MSDA_WITH_CUDA"
PREBUILT_NAME = "_msda_C"  # setup.py's extension: mask2former/_msda_C<suffix>
OP_NAMESPACE = "mask2former"


@dataclass(frozen=True)
class ExtensionStatus:
    """Outcome of loading the compiled kernels.

    Attributes:
        loaded: the ``mask2former::ms_deform_attn_*`` ops are registered.
        has_cuda: they have CUDA kernels.
        origin: where they came from (library path), or why not when ``loaded`` is False.
    """

    loaded: bool
    has_cuda: bool
    origin: str


def source_paths(with_cuda: bool) -> list[Path]:
    """Kernel sources, the CUDA one included when ``with_cuda``."""
    names = CPU_SOURCES + (CUDA_SOURCES if with_cuda else ())
    return [SOURCE_DIR / name for name in names]


def find_nvcc() -> str | None:
    """Path of ``nvcc`` from ``CUDA_HOME`` (as torch resolves it) or ``PATH``, else None."""
    from torch.utils.cpp_extension import CUDA_HOME

    if CUDA_HOME is not None:
        candidate = Path(CUDA_HOME) / "bin" / "nvcc"
        if candidate.is_file():
            return str(candidate)
    return shutil.which("nvcc")


def cuda_build_possible() -> bool:
    """True when the CUDA source can be built and run: a GPU, a CUDA torch and ``nvcc``."""
    return torch.version.cuda is not None and torch.cuda.is_available() and find_nvcc() is not None


def _prebuilt_library() -> Path | None:
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = PACKAGE_DIR / f"{PREBUILT_NAME}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _build_library(with_cuda: bool) -> str:
    from torch.utils.cpp_extension import load

    sources = source_paths(with_cuda)
    missing = [str(path) for path in sources if not path.is_file()]
    if missing:
        raise FileNotFoundError(
            f"kernel sources not found: {missing} (a source checkout or "
            "MASK2FORMER_BUILD_EXT=1 install is needed)"
        )
    name = f"mask2former_msda_{'cuda' if with_cuda else 'cpu'}"
    define = [f"-D{CUDA_DEFINE}"] if with_cuda else []
    logger.info("Building the MSDeformAttn kernels (%s); cached after the first use", name)
    load(
        name=name,
        sources=[str(path) for path in sources],
        extra_cflags=[*EXTRA_CFLAGS, *define],
        extra_cuda_cflags=[*EXTRA_CUDA_CFLAGS, *define],
        is_python_module=False,
        verbose=False,
    )
    return f"JIT build {name}"


def _has_cuda_kernel() -> bool:
    return torch._C._dispatch_has_kernel_for_dispatch_key(
        f"{OP_NAMESPACE}::ms_deform_attn_forward", "CUDA"
    )


def _summarize(error: BaseException) -> str:
    """The first line and the compiler's error lines of a failed build, kept short."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    details = [line for line in lines[1:] if "error" in line.lower()][:5]
    return " | ".join([f"{type(error).__name__}: {lines[0]}", *details])[:2000]


_load_lock = threading.Lock()
_status: ExtensionStatus | None = None


def load_extension() -> ExtensionStatus:
    """Loads (building if needed) the compiled kernels once per process; thread-safe.

    Returns:
        The status; on failure a single ``RuntimeWarning`` has said why.
    """
    global _status
    with _load_lock:
        if _status is None:
            _status = _load()
        return _status


def _load() -> ExtensionStatus:
    from mask2former.layers import _msda_ops

    prebuilt = _prebuilt_library()
    try:
        if prebuilt is not None:
            torch.ops.load_library(str(prebuilt))
            origin = str(prebuilt)
        else:
            origin = _build_library(with_cuda=cuda_build_possible())
    except (RuntimeError, OSError, ImportError, subprocess.CalledProcessError) as error:
        reason = _summarize(error)
        warnings.warn(
            f"MSDeformAttn: the compiled kernels are unavailable ({reason}); "
            "using the PyTorch reference implementation",
            RuntimeWarning,
            stacklevel=3,
        )
        return ExtensionStatus(loaded=False, has_cuda=False, origin=reason)
    _msda_ops.register_python_impls()
    status = ExtensionStatus(loaded=True, has_cuda=_has_cuda_kernel(), origin=origin)
    logger.info("MSDeformAttn kernels loaded from %s (CUDA kernels: %s)", origin, status.has_cuda)
    return status
