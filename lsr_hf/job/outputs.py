"""The output folder of a run: never overwritten by accident, resumed from its last complete checkpoint.

``plan_output_dir`` is called before any data is loaded. A ``training.output_dir`` that does not exist or is empty
gets a fresh run. One that holds anything stops the job (``OutputDirError``, exit status 2) naming the folder and
the two ways on, as HF's example scripts do:

* ``--resume``: continue from the last **complete** checkpoint (a ``checkpoint-N`` folder whose
  ``trainer_state.json`` — the file Trainer writes last — reads as JSON, beside the model weights). A partial
  checkpoint (the job was killed while writing it) is deleted. On a finished run (``results.json`` of the same
  recipe) there is nothing to do: the stored results are returned and nothing is retrained.
* ``--overwrite``: delete what an earlier run wrote there (its ``checkpoint-*`` folders and result files; anything
  else in the folder is left alone) and train from scratch. A folder that holds files named like a run's (a user's
  own ``README.md`` or ``config.json``) but is not marked as lsr-hf's (``is_run_folder``: the ``recipe.yaml`` every
  run writes before training, or a finished run's ``results.json``) is refused, not cleared.

Both together mean "resume if there is a complete checkpoint, otherwise start again" (what a preemptible job or a
sweep wants). ``results.json`` is written last and atomically (``write_json``), so it exists only for a run that
finished.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsr_hf.errors import OutputDirError
from lsr_hf.recipe import RESOLVED_HEADER, flatten_recipe

logger = logging.getLogger(__name__)

RESULTS_FILE = "results.json"
PREDICTIONS_FILE = "test_predictions.npz"  # test logits and labels (np.load(..., allow_pickle=False))
TRAINER_STATE_FILE = "trainer_state.json"  # Trainer writes it last in a checkpoint
WEIGHT_FILES = (
    "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"
)  # fmt: skip
# what a run writes at the top of its folder; --overwrite deletes these and the checkpoint-* folders, nothing else
RUN_FILES = (
    RESULTS_FILE, PREDICTIONS_FILE, "README.md", "recipe.yaml", "config.json", *WEIGHT_FILES, TRAINER_STATE_FILE,
    "training_args.bin", "training_args.json", "preprocessor_config.json", "all_results.json", "train_results.json",
    "eval_results.json", "reliability.png",
)  # fmt: skip
CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
WAYS_ON = (
    "pass --resume to continue it from its last complete checkpoint, or --overwrite to delete it and train again "
    "(or choose another training.output_dir)"
)
NOT_A_RUN = (
    "it is not an lsr-hf run (no recipe.yaml or results.json of one), so --overwrite will not delete anything in "
    "it: choose another training.output_dir, or empty the folder yourself"
)


@dataclass
class OutputPlan:
    """What to do in the output folder: resume from ``checkpoint`` (None: from scratch), or nothing at all when
    ``finished`` holds the ``results.json`` of a finished run of the same recipe."""

    checkpoint: str | None = None
    finished: dict[str, Any] | None = None


def checkpoints(output_dir: str | os.PathLike[str]) -> list[Path]:
    """The ``checkpoint-N`` folders of ``output_dir``, by step N."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := CHECKPOINT.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def is_complete_checkpoint(folder: str | os.PathLike[str]) -> bool:
    """Whether Trainer finished writing ``folder``: its ``trainer_state.json`` (written last) reads as JSON with a
    ``global_step``, and the model weights are there."""
    folder = Path(folder)
    try:
        state = json.loads((folder / TRAINER_STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(state, dict) and "global_step" in state and any((folder / f).is_file() for f in WEIGHT_FILES)


def last_complete_checkpoint(output_dir: str | os.PathLike[str]) -> Path | None:
    """The complete checkpoint with the highest step in ``output_dir``, or None."""
    return next((p for p in reversed(checkpoints(output_dir)) if is_complete_checkpoint(p)), None)


def finished_results(output_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``results.json`` of a finished run in ``output_dir``, or None (absent or unreadable)."""
    try:
        results = json.loads((Path(output_dir) / RESULTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return results if isinstance(results, dict) and isinstance(results.get("metrics"), dict) else None


def is_run_folder(output_dir: str | os.PathLike[str]) -> bool:
    """Whether lsr-hf trained into ``output_dir``: it holds the ``recipe.yaml`` a run writes before training
    (first line ``RESOLVED_HEADER``) or a finished run's ``results.json`` (with its metrics and recipe)."""
    folder = Path(output_dir)
    try:
        with open(folder / "recipe.yaml", encoding="utf-8") as f:
            if f.readline().startswith(RESOLVED_HEADER):
                return True
    except (OSError, UnicodeDecodeError):
        pass
    finished = finished_results(folder)
    return finished is not None and isinstance(finished.get("recipe"), Mapping)


def plan_output_dir(
    output_dir: str | os.PathLike[str],
    recipe: Mapping[str, Any],
    resume: bool = False,
    overwrite: bool = False,
    is_main_process: bool = True,
) -> OutputPlan:
    """Checks ``output_dir`` for a run of ``recipe`` (its ``to_dict()``) before anything is loaded (module docstring).

    Only the main process deletes (partial checkpoints, an overwritten run). Raises ``OutputDirError``.
    """
    folder = Path(output_dir)
    shown = f"training.output_dir={str(output_dir)!r}"
    _check_writable(folder, shown)
    if not folder.is_dir() or not any(folder.iterdir()):
        if resume and not overwrite:
            state = "does not exist" if not folder.exists() else "is empty"
            raise OutputDirError(f"--resume: no checkpoint to resume from: {shown} {state}; run without --resume")
        return OutputPlan()

    finished = finished_results(folder)
    if resume and finished is not None:
        changed = recipe_differences(finished.get("recipe"), recipe)
        if not changed:
            return OutputPlan(finished=finished)
        if not overwrite:
            raise OutputDirError(
                f"{shown} holds a finished run of another recipe (it differs in {', '.join(changed[:5])}"
                f"{', ...' if len(changed) > 5 else ''}); pass --overwrite to delete it and train again, or choose "
                "another training.output_dir"
            )
    elif resume:
        checkpoint = last_complete_checkpoint(folder)
        if checkpoint is not None:
            partial = [p for p in checkpoints(folder) if _step(p) > _step(checkpoint)]
            if partial and is_main_process:
                logger.warning("deleting partial checkpoint(s) %s: the run was stopped while writing them",
                               ", ".join(p.name for p in partial))  # fmt: skip
                for p in partial:
                    shutil.rmtree(p)
            return OutputPlan(checkpoint=str(checkpoint))
        if not overwrite:
            partial = [p.name for p in checkpoints(folder)]
            raise OutputDirError(
                f"--resume: no complete checkpoint in {shown}"
                + (f" (only the partial {', '.join(partial)})" if partial else "")
                + "; pass --overwrite to delete it and train again"
            )
    elif not overwrite:
        ways = NOT_A_RUN if _foreign_run_files(folder) else WAYS_ON
        raise OutputDirError(f"{shown} already holds {_describe(folder, finished)}: {ways}")

    if _foreign_run_files(folder):
        raise OutputDirError(f"--overwrite: {shown} holds {_describe(folder, finished)}, but {NOT_A_RUN}")
    if is_main_process:
        clear_run(folder)
    return OutputPlan()


def run_files(folder: Path) -> list[Path]:
    """What ``clear_run`` deletes in ``folder``: its ``checkpoint-*`` folders and the ``RUN_FILES`` it has."""
    return [*checkpoints(folder), *(p for p in (folder / name for name in RUN_FILES) if p.exists())]


def _foreign_run_files(folder: Path) -> bool:
    """Whether ``folder`` holds files named like a run's (a ``README.md``, a ``config.json``, ...) although it is not
    marked as a run's (``is_run_folder``): ``--overwrite`` would delete, and training overwrite, someone's files."""
    return bool(run_files(folder)) and not is_run_folder(folder)


def clear_run(folder: Path) -> None:
    """Deletes what a run wrote in ``folder`` (``checkpoint-*`` folders, ``RUN_FILES``); other files stay."""
    removed = []
    for path in run_files(folder):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        else:
            continue
        removed.append(path.name)
    if removed:
        logger.warning("--overwrite: deleted %s from %s", ", ".join(removed), folder)


def recipe_differences(stored: Any, recipe: Mapping[str, Any]) -> list[str]:
    """Dotted keys whose values differ between a stored recipe dict and ``recipe`` (``training.output_dir`` and
    keys that only one side has — a field added or removed by another lsr-hf version — are not compared)."""
    if not isinstance(stored, Mapping):
        return ["recipe (results.json has none)"]
    was, now = flatten_recipe(stored), flatten_recipe(json.loads(json.dumps(recipe)))
    return sorted(k for k in was.keys() & now.keys() if was[k] != now[k] and k != "training.output_dir")


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Writes ``data`` as JSON atomically: a temporary file beside ``path``, then a rename (never half a file)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_writable(folder: Path, shown: str) -> None:
    """The folder, or the nearest folder above it that exists (where it will be made), must be writable."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputDirError(f"{shown} cannot be made: {str(existing)!r} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "is not writable" if existing == folder else f"cannot be made: {str(existing)!r} is not writable"
        raise OutputDirError(f"{shown} {what}; choose another training.output_dir or fix its permissions")


def _describe(folder: Path, finished: dict[str, Any] | None) -> str:
    if finished is not None:
        return f"a finished run ({RESULTS_FILE})"
    checkpoint = last_complete_checkpoint(folder)
    if checkpoint is not None:
        return f"an unfinished run (last complete checkpoint: {checkpoint.name})"
    names = sorted(p.name for p in folder.iterdir())
    return f"files ({', '.join(names[:5])}{', ...' if len(names) > 5 else ''})"


def _step(checkpoint: Path) -> int:
    match = CHECKPOINT.match(checkpoint.name)
    return int(match.group(1)) if match else -1


def interrupted_message(
    output_dir: str | os.PathLike[str], command: str, step: int | None = None, max_steps: int | None = None
) -> str:
    """One line for a run stopped by Ctrl-C: where it stopped, what is on disk, and the command that continues it
    (``command`` with ``--resume``; with ``--overwrite`` too when there is no checkpoint to resume from)."""
    folder = Path(output_dir)
    if step is not None:
        of = f" of {max_steps}" if max_steps else ""
        return (
            f"interrupted (Ctrl-C) at step {step}{of}: saved {folder / f'checkpoint-{step}'}; continue with: "
            f"{_with_flags(command, '--resume')}"
        )
    last = last_complete_checkpoint(folder)
    if last is not None:
        return f"interrupted (Ctrl-C): the last complete checkpoint is {last}; continue with: {_with_flags(command, '--resume')}"
    if folder.is_dir() and any(folder.iterdir()):
        return (
            f"interrupted (Ctrl-C) before the first checkpoint: nothing to resume in {str(folder)!r}; start again "
            f"with: {_with_flags(command, '--overwrite')}"
        )
    return f"interrupted (Ctrl-C) before anything was written: start again with: {command}"


def _with_flags(command: str, *flags: str) -> str:
    words = command.split()
    return " ".join([command, *(f for f in flags if f not in words)])
