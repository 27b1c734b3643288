"""Planning a sweep (one folder per run, recipes checked first) and running it through ``lsr_hf.train.run``."""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsr_hf.recipe import Recipe, RecipeError, load_recipe
from lsr_hf.sweep.common import SweepError, recipe_identity, recipe_view
from lsr_hf.sweep.report import write_report
from lsr_hf.sweep.spec import SweepSpec, expand_grids, run_name, yaml_text
from lsr_hf.train import RESULTS_FILE


@dataclass
class PlannedRun:
    """One run of a sweep: its grid overrides, seed, folder and validated recipe."""

    name: str
    overrides: dict[str, Any]
    seed: int
    output_dir: Path
    recipe: Recipe
    status: str = "new"  # "done" (results.json exists), "resume" (has a checkpoint), "restart" (folder, no results)


def plan_sweep(spec: SweepSpec, output_dir: str | os.PathLike[str] | None = None) -> list[PlannedRun]:
    """Expands the grids over the seeds, loads and checks every run's recipe and finds each run's status.

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
    for seed in spec.seeds:  # seed-major: a stopped sweep has whole seeds of the grid done, not a few configurations
        for config in configs:
            name = run_name(config, seed)
            folder = root / name
            overrides = [
                *spec.set,
                *(f"{key}={yaml_text(value)}" for key, value in config.items()),
                f"training.seed={seed}",
                f"training.output_dir={json.dumps(str(folder))}",
            ]
            try:
                recipe = load_recipe(spec.recipe, overrides)
            except RecipeError as err:
                errors.setdefault(str(err).replace("(from --set)", "(from the sweep)"), []).append(name)
                continue
            try:  # what lsr_hf.train.run checks first, before loading data (a dataset without a spec: once loaded)
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
            runs.append(PlannedRun(name=name, overrides=dict(config), seed=seed, output_dir=folder, recipe=recipe))
    if errors:
        lines = [f"{spec.path}: {sum(map(len, errors.values()))} run(s) have an invalid recipe:"]
        for message, failed in errors.items():
            lines.append(f"  {message}  [{len(failed)} run(s), e.g. {failed[0]}]")
        raise SweepError("\n".join(lines))
    for planned in runs:
        planned.status = _status(planned)
    return runs


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
        if was != now:
            changed = sorted(k for k in set(was) | set(now) if was.get(k, "<unset>") != now.get(k, "<unset>"))
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


def run_sweep(
    spec: SweepSpec,
    *,
    output_dir: str | os.PathLike[str] | None = None,
    dry_run: bool = False,
    callbacks: Sequence[Any] = (),
    echo: Callable[[str], None] = print,
    report: bool = True,
) -> list[PlannedRun]:
    """Runs a sweep: plans (and validates) every run, trains the unfinished ones in order, writes the report.

    Args:
        spec: from :func:`load_sweep`.
        output_dir: overrides ``spec.output_dir``.
        dry_run: only print the plan (each run's name and status); nothing is trained or written.
        callbacks: ``TrainerCallback``s passed to every run.
        echo: where progress lines go.
        report: write :func:`write_report` at the end.

    Returns the plan; the ``status`` of each run is what it was before this call ("done" ones were skipped).
    """
    root = Path(output_dir if output_dir is not None else spec.output_dir)
    runs = plan_sweep(spec, root)
    counts = {s: sum(r.status == s for r in runs) for s in ("done", "resume", "restart", "new")}
    echo(
        f"{spec.path}: {len(runs)} runs in {root} ({counts['done']} done, {counts['resume']} to resume, "
        f"{counts['restart']} to restart, {counts['new']} new)"
    )
    if dry_run:
        for k, planned in enumerate(runs, start=1):
            echo(f"[{k}/{len(runs)}] {planned.status:7s} {planned.name}")
        return runs

    from lsr_hf.train import run as train_run

    for k, planned in enumerate(runs, start=1):
        prefix = f"[{k}/{len(runs)}] {planned.name}"
        if planned.status == "done":
            echo(f"{prefix}: done, skipped")
            continue
        echo(f"{prefix}: {'resuming' if planned.status == 'resume' else 'training'}")
        try:
            results = train_run(planned.recipe, resume=planned.status == "resume", overwrite=True, callbacks=callbacks)
        except BaseException:
            echo(f"{prefix}: failed; the finished runs are kept, run the same command again to continue")
            raise
        metrics = results["metrics"]
        echo(
            f"{prefix}: test accuracy {metrics.get('test_accuracy', float('nan')):.4f}, "
            f"val accuracy {metrics.get('eval_accuracy', float('nan')):.4f} in {results['wall_seconds']:.0f} s"
        )
        gc.collect()
    if report:
        for path in write_report(root):
            echo(f"wrote {path}")
    return runs
