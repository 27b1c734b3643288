"""The fused Triton objective (``lsr_hf.fused_loss``) against ``_TwoValuedObjective`` evaluated in float64.

Triton's interpreter (``TRITON_INTERPRET=1``) runs the kernels on CPU tensors, but it is chosen when the kernels are
defined, so all cases run in one subprocess (``tests/fused_loss_check.py``); each case is asserted here on its own.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("triton")

_CHECK_SCRIPT = Path(__file__).with_name("fused_loss_check.py")
_spec = importlib.util.spec_from_file_location("fused_loss_check", _CHECK_SCRIPT)
check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check)


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    repo = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (repo, env.get("PYTHONPATH"))))
    done = subprocess.run(
        [sys.executable, str(_CHECK_SCRIPT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=repo,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", list(check.CASES))
def test_fused_objective_matches_the_float64_reference(results: dict[str, Any], name: str) -> None:
    """Total, the three sums and the gradient of (1.7·total) within ``check.TOLERANCE`` of the reference, finite,
    zero gradient on ignored rows, the reference's shapes and dtypes (details: ``fused_loss_check.problems``)."""
    assert not check.problems(name, results[name]), (check.problems(name, results[name]), results[name])


def test_module_imports_without_triton() -> None:
    """``triton_available()`` is False and the module still imports when ``import triton`` fails."""
    code = (
        "import sys, builtins\n"
        "real = builtins.__import__\n"
        "def fake(name, *a, **k):\n"
        "    if name == 'triton' or name.startswith('triton.'):\n"
        "        raise ImportError(name)\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = fake\n"
        "from lsr_hf.fused_loss import triton_available\n"
        "assert not triton_available()\n"
    )
    repo = str(Path(__file__).resolve().parents[1])
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=repo, check=False
    )
    assert done.returncode == 0, done.stderr[-4000:]
