"""The ``lsr-hf`` command and ``make demo``'s launch line, run in subprocesses as a user runs them: a clean error is
one message and an exit status, never a traceback (the project's or accelerate's), and a CPU run prints none of the
pin-memory or accelerate default-value warnings."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the environment the tests run in (.venv/bin under `make test`)
BAD_MESSAGE = "loss.temperature must be > 0, got -1"
NOISE = ("Traceback", "pin_memory", "were not passed to `accelerate launch`", "`non_blocking` is enabled")


def _run(argv: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # offline, throw-away HF_HOME: set by conftest.py
    env.pop("LSR_HF_DEBUG", None)
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)


def _bad_recipe(tmp_path: Path) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(f"extends: {REPO / 'recipes' / 'demo_ostc.yaml'}\nloss:\n  temperature: -1\n")
    return path


def make_demo_command() -> list[str]:
    """The recipe of the Makefile's ``demo`` target, with ``$(VENV)`` the test environment."""
    makefile = (REPO / "Makefile").read_text()
    lines = re.search(r"^demo:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert lines, "the Makefile lost its demo target"
    return shlex.split(lines.group(1).replace("\\\n", " ").replace("$(VENV)", str(BIN.parent)))


def test_lsr_hf_train_help_is_the_train_command_line():
    done = _run([str(BIN / "lsr-hf"), "train", "--help"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: lsr-hf train")
    assert "--recipe PATH" in done.stdout and "--overwrite" in done.stdout


def test_lsr_hf_without_a_command_is_a_usage_error():
    done = _run([str(BIN / "lsr-hf")])
    assert done.returncode == 2
    assert "usage: lsr-hf" in done.stderr and "Traceback" not in done.stderr


def test_lsr_hf_train_bad_recipe_exits_2_with_one_message(tmp_path):
    bad = _bad_recipe(tmp_path)
    done = _run([str(BIN / "lsr-hf"), "train", "--recipe", str(bad)])
    assert done.returncode == 2
    assert f"error: {bad}: {BAD_MESSAGE}" in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""


def test_make_demo_line_runs_again_into_its_folder_quietly(tmp_path):
    command = make_demo_command()
    assert command[1:3] == ["launch", "-q"] and "--overwrite" in command
    out = tmp_path / "demo"
    fast = [
        f"training.output_dir={out}", "training.max_steps=1", "training.eval_strategy='no'",
        "training.save_strategy='no'", "training.disable_tqdm=true", "data.max_train_samples=64",
    ]  # fmt: skip
    flags = [arg for item in fast for arg in ("--set", item)]
    for _ in range(2):  # `make demo`, then `make demo` again: the second replaces the first
        done = _run([*command, *flags])
        assert done.returncode == 0, done.stderr
        assert re.search(r"^test accuracy \d\.\d{4}, test ECE", done.stdout, re.M), done.stdout
        assert not [noise for noise in NOISE if noise in done.stderr], done.stderr
        assert (out / "results.json").is_file()


def test_accelerate_launch_quiet_ends_a_clean_error_without_a_traceback(tmp_path):
    """``accelerate launch -q -m lsr_hf.job.cli train``: the project's message, accelerate's status 1, no traceback."""
    bad = _bad_recipe(tmp_path)
    launch = [str(BIN / "accelerate"), "launch", "-q", "--num_processes", "1", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no"]  # fmt: skip
    done = _run([*launch, "-m", "lsr_hf.job.cli", "train", "--recipe", str(bad)])
    assert done.returncode == 1
    assert f"error: {bad}: {BAD_MESSAGE}" in done.stderr
    assert not [noise for noise in NOISE if noise in done.stderr], done.stderr
