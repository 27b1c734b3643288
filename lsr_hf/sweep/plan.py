"""Planning a sweep: one folder and one checked recipe per run, and what each folder holds already (done, to
resume, to restart, new). Nothing is trained here (:mod:`lsr_hf.sweep.run` does that)."""

from __future__ import annotations

import itertools
import json
import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsr_hf.job.outputs import RESULTS_FILE
from lsr_hf.recipe import Recipe, RecipeError, load_recipe
from lsr_hf.sweep.common import SweepError, recipe_identity, recipe_view
from lsr_hf.sweep.spec import SweepSpec, expand_grids, run_name, yaml_text


@dataclass
class PlannedRun:
    """One run of a sweep: its grid overrides, seed, folder and validated recipe."""

    name: str
    overrides: dict[str, Any]
    seed: int
    output_dir: Path
    recipe: Recipe
    fold: int | None = None  # k-fold sweeps: the fold that is this run's test split
    status: str = "new"  # "done" (results.json exists), "resume" (has a checkpoint), "restart" (folder, no results)
    outcome: str = ""  # set by run_sweep: "skipped" (was done), "finished", "failed"
    error: str | None = None  # a failed run: "ExceptionType: message"
    log_path: Path | None = None  # where the run's output went (the Ray backend: <output_dir>/train.log)
    command: str | None = None  # the scripts/train.py command that trains this run alone (written to its results.json)


def plan_sweep(spec: SweepSpec, output_dir: str | os.PathLike[str] | None = None) -> list[PlannedRun]:
    """Expands the grids over the seeds (and folds), loads and checks every run's recipe and finds each run's status.

    Nothing is trained or written. Raises :class:`SweepError` listing every invalid run (identical messages
    grouped), when two different runs would share a folder, or when a finished run's ``results.json`` was made
    from a different recipe than the one planned now (a changed base recipe or ``set:``).
    """
    from lsr_hf.data import get_spec

    root = Path(output_dir if output_dir is not None else spec.output_dir)
    errors: dict[str, list[str]] = {}
    runs: list[PlannedRun] = []
    seen_recipes: set[str] = set()
    names: dict[str, str] = {}
    configs = expand_grids(spec.grids)
    folds: Sequence[int | None] = range(spec.folds) if spec.folds is not None else (None,)
    # seed-major, then fold: a stopped sweep has whole seeds (all folds) of the grid done, not a few configurations
    for seed, fold, config in itertools.product(spec.seeds, folds, configs):
        name = run_name(config, seed, fold)
        folder = root / name
        fold_overrides = [f"data.num_folds={spec.folds}", f"data.fold={fold}"] if fold is not None else []
        overrides = [
            *spec.set,
            *(f"{key}={yaml_text(value)}" for key, value in config.items()),
            *fold_overrides,
            f"training.seed={seed}",
            f"training.output_dir={json.dumps(str(folder))}",
        ]
        try:
            recipe = load_recipe(spec.recipe, overrides)
        except RecipeError as err:
            errors.setdefault(str(err).replace("(from --set)", "(from the sweep)"), []).append(name)
            continue
        try:  # what lsr_hf.job.train.run checks first, before loading data (a dataset without a spec: once loaded)
            if recipe.data.builtin:
                recipe.loss.check_num_classes(get_spec(recipe.data.name).num_classes)
        except ValueError as err:
            errors.setdefault(f"{spec.recipe}: loss.{err}", []).append(name)
            continue
        identity = recipe_identity(recipe.to_dict(), drop=("training.output_dir",))
        if identity in seen_recipes:  # same resolved recipe as an earlier run (e.g. a grid repeating a default)
            continue
        seen_recipes.add(identity)
        if name in names and names[name] != identity:
            raise SweepError(f"{spec.path}: two different runs map to the folder {name!r}; rename a grid value")
        names[name] = identity
        command = shlex.join(["python", "scripts/train.py", "--recipe", spec.recipe, *_set_flags(overrides)])
        runs.append(
            PlannedRun(
                name=name,
                overrides=dict(config),
                seed=seed,
                output_dir=folder,
                recipe=recipe,
                fold=fold,
                command=command,
            )
        )
    if errors:
        lines = [f"{spec.path}: {sum(map(len, errors.values()))} run(s) have an invalid recipe:"]
        for message, failed in errors.items():
            lines.append(f"  {message}  [{len(failed)} run(s), e.g. {failed[0]}]")
        raise SweepError("\n".join(lines))
    for planned in runs:
        planned.status = _status(planned)
    return runs


def _set_flags(overrides: Sequence[str]) -> list[str]:
    """``--set key=value`` for each override, in order (the command line that resolves the same recipe)."""
    return [part for override in overrides for part in ("--set", override)]


def _status(planned: PlannedRun) -> str:
    results_path = planned.output_dir / RESULTS_FILE
    if results_path.is_file():
        try:
            stored = json.loads(results_path.read_text(encoding="utf-8")).get("recipe")
        except (json.JSONDecodeError, AttributeError):
            return "restart"  # an unreadable results file: the run did not finish cleanly
        # the folder itself may have moved (another --output-dir): compare everything else
        was = recipe_view(stored if isinstance(stored, dict) else {}, drop=("training.output_dir",))
        now = recipe_view(planned.recipe.to_dict(), drop=("training.output_dir",))
        # keys only one side has are fields another lsr-hf version added or removed: not compared
        changed = sorted(k for k in was.keys() & now.keys() if was[k] != now[k])
        if changed:
            raise SweepError(
                f"{results_path} was made from a different recipe than the one planned now (differs in "
                f"{', '.join(changed[:5])}{', ...' if len(changed) > 5 else ''}: was the base recipe or set: "
                "changed?); delete that folder or use another output_dir"
            )
        return "done"
    if planned.output_dir.is_dir():
        from transformers.trainer_utils import get_last_checkpoint

        return "resume" if get_last_checkpoint(str(planned.output_dir)) is not None else "restart"
    return "new"
