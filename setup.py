"""Packaging entry point (metadata lives in pyproject.toml).

By default this is a pure-Python install and the MSDeformAttn kernels build on first use.
``MASK2FORMER_BUILD_EXT=1 pip install -e . --no-build-isolation`` prebuilds them instead
(``mask2former/_msda_C*.so``; CUDA sources included when torch has CUDA and nvcc is found,
or with ``FORCE_CUDA=1``). It needs torch importable at build time, hence no build isolation.
A built (non-editable) package also carries copies of ``configs/``, ``csrc/``, ``demo/`` and
``tools/`` under ``mask2former/_shipped``.
"""

import importlib.util
import os
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

KERNEL_DIR = "csrc/ms_deform_attn"


def _shipped_trees() -> dict[str, tuple[str, ...]]:
    """The repository folders a wheel carries under mask2former/_shipped (configs, kernel
    sources, scripts), as listed by the module that reads them (loaded by path: the package
    itself needs torch, which the build environment may lack)."""
    spec = importlib.util.spec_from_file_location(
        "_shipped_files", Path(__file__).parent / "mask2former" / "utils" / "shipped_files.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SHIPPED_TREES


class BuildPyWithShippedFiles(build_py):
    """build_py that also copies the shipped folders into the built package (not for editable
    installs, which read the checkout's files)."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        repo_root = Path(__file__).resolve().parent
        target_root = Path(self.build_lib) / "mask2former" / "_shipped"
        for tree, patterns in _shipped_trees().items():
            for pattern in patterns:
                for source in (repo_root / tree).rglob(pattern):
                    target = target_root / source.relative_to(repo_root)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(source, target)


def setup_kwargs() -> dict:
    """setup() arguments: the shipped files, plus the prebuilt kernels when
    MASK2FORMER_BUILD_EXT=1."""
    if os.environ.get("MASK2FORMER_BUILD_EXT", "0") != "1":
        return {"cmdclass": {"build_py": BuildPyWithShippedFiles}}
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

    sources = [f"{KERNEL_DIR}/ms_deform_attn.cpp", f"{KERNEL_DIR}/cpu/ms_deform_attn_cpu.cpp"]
    with_cuda = CUDA_HOME is not None and (
        torch.cuda.is_available() or os.environ.get("FORCE_CUDA", "0") == "1"
    )
    if with_cuda:
        extension = CUDAExtension(
            "mask2former._msda_C",
            sources + [f"{KERNEL_DIR}/cuda/ms_deform_attn_cuda.cu"],
            define_macros=[("MSDA_WITH_CUDA", None)],
            extra_compile_args={"cxx": ["-O3"], "nvcc": ["-O3"]},
        )
    else:
        extension = CppExtension(
            "mask2former._msda_C", sources, extra_compile_args={"cxx": ["-O3"]}
        )
    return {
        "ext_modules": [extension],
        "cmdclass": {"build_ext": BuildExtension, "build_py": BuildPyWithShippedFiles},
    }


setup(**setup_kwargs())
