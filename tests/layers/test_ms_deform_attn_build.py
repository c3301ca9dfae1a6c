"""The CUDA kernel source compiles with nvcc; no GPU needed.

CI's image has nvcc and pip's (CUDA) build of torch, so under
MASK2FORMER_TEST_STRICT=1 a missing one fails this test instead of skipping it.
"""

from __future__ import annotations

import subprocess
import sysconfig

import torch
from torch.utils import cpp_extension

from mask2former.layers import _msda_build
from tests.optional import unavailable

NVCC = _msda_build.find_nvcc()


def test_cuda_source_compiles(tmp_path):
    if torch.version.cuda is None:
        unavailable(
            f"needs a CUDA build of torch; torch {torch.__version__} is CPU-only", ci_has_it=True
        )
    if NVCC is None:
        unavailable(
            f"needs nvcc: none in CUDA_HOME ({cpp_extension.CUDA_HOME}) or on PATH", ci_has_it=True
        )
    # Same flags as the JIT build, one architecture only to keep CI fast.
    (source,) = (p for p in _msda_build.source_paths(with_cuda=True) if p.suffix == ".cu")
    command = [
        NVCC,
        "-c",
        str(source),
        "-o",
        str(tmp_path / "ms_deform_attn_cuda.o"),
        "-std=c++20",
        "-Xcompiler",
        "-fPIC",
        "-gencode=arch=compute_90,code=sm_90",
        f"-D{_msda_build.CUDA_DEFINE}",
        *cpp_extension.COMMON_NVCC_FLAGS,
        *_msda_build.EXTRA_CUDA_CFLAGS,
        *(f"-I{path}" for path in cpp_extension.include_paths(device_type="cuda")),
        f"-I{sysconfig.get_paths()['include']}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"nvcc failed:\n{result.stderr[-4000:]}"
    assert (tmp_path / "ms_deform_attn_cuda.o").stat().st_size > 0
