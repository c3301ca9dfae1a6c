"""Packaging entry point (metadata lives in pyproject.toml).

`MASK2FORMER_BUILD_EXT=1 pip install -e .` will prebuild the MSDeformAttn kernels
(wired in by the kernels work, csrc/ms_deform_attn); otherwise they build on first use.
"""

from setuptools import setup

setup()
