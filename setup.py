"""Packaging entry point (metadata lives in pyproject.toml).

By default this is a pure-Python install and the MSDeformAttn kernels build on first use.
``MASK2FORMER_BUILD_EXT=1 pip install -e . --no-build-isolation`` prebuilds them instead
(``mask2former/_msda_C*.so``; CUDA sources included when torch has CUDA and nvcc is found,
or with ``FORCE_CUDA=1``). It needs torch importable at build time, hence no build isolation.
"""

import os

from setuptools import setup

KERNEL_DIR = "csrc/ms_deform_attn"


def kernel_extension_kwargs() -> dict:
    """setup() arguments that prebuild the kernels, empty unless MASK2FORMER_BUILD_EXT=1."""
    if os.environ.get("MASK2FORMER_BUILD_EXT", "0") != "1":
        return {}
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
    return {"ext_modules": [extension], "cmdclass": {"build_ext": BuildExtension}}


setup(**kernel_extension_kwargs())
