"""Run the repository's scripts (demo/, tools/) in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli_env(**extra: str) -> dict[str, str]:
    """The current environment with the repository importable (also when not pip-installed)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO_ROOT, env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def start_cli(script: str, args: Sequence[str], **env: str) -> subprocess.Popen:
    """Start ``python <script> <args>`` from the repository root (stdout + stderr captured)."""
    return subprocess.Popen(
        [sys.executable, os.path.join(REPO_ROOT, script), *args],
        cwd=REPO_ROOT,
        env=cli_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish_cli(process: subprocess.Popen, timeout: float = 300) -> str:
    """Wait for ``process``; returns its output, or fails showing the output's tail."""
    output, _ = process.communicate(timeout=timeout)
    if process.returncode != 0:
        raise AssertionError(
            f"{' '.join(process.args)} exited with {process.returncode}:\n{output[-4000:]}"
        )
    return output


def run_cli(script: str, args: Sequence[str], timeout: float = 300, **env: str) -> str:
    """Run a script to completion; returns its output (fails on a non-zero exit)."""
    return finish_cli(start_cli(script, args, **env), timeout)
