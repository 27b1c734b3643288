"""Stage 2 of a two-stage study: the setting each backbone's validation split chose per method, again with more seeds.

Stage 1 runs a grid at one seed; :func:`repeat_chosen` reads its finished runs, picks for every (dataset, backbone,
method) the configuration the report picks (:func:`lsr_hf.sweep.results.select_by_validation`: highest mean
validation accuracy on the seeds all candidates share, then lower validation NLL; test metrics play no part) and
writes a sweep file that runs exactly those configurations with the new seeds, into the same ``output_dir`` and with
the same grid keys, so each new run's folder name differs from its stage-1 twin only in the seed and the report
groups them. Because selection uses the shared seeds, the extra seeds do not move the choice.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsr_hf.sweep.common import DEFAULT_SELECTION, SweepError
from lsr_hf.sweep.results import collect_runs, select_by_validation, summarize_runs
from lsr_hf.sweep.plan import plan_sweep
from lsr_hf.sweep.spec import SweepSpec, yaml_text


@dataclass
class ChosenSetting:
    """One configuration chosen on validation: its grid overrides, and the evidence (for the file's comments)."""

    overrides: dict[str, Any]
    val_accuracy: float
    n_settings: int


@dataclass
class RepeatPlan:
    """What :func:`repeat_chosen` found: the chosen settings, in stage-1 order, and the stage-1 runs not finished."""

    chosen: list[ChosenSetting] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)  # run names of stage 1 without results.json


def repeat_chosen(
    spec: SweepSpec, output_dir: str | os.PathLike[str] | None = None, select_by: str = DEFAULT_SELECTION
) -> RepeatPlan:
    """The configurations of ``spec`` (stage 1) chosen on validation (by ``select_by``, as the report chooses),
    from its finished runs under ``output_dir`` (default: the sweep's own). Raises :class:`SweepError` when no run
    of the sweep has finished."""
    planned = plan_sweep(spec, output_dir)
    by_folder = {p.output_dir.resolve(): p for p in planned}
    root = Path(output_dir if output_dir is not None else spec.output_dir)
    records = [r for r in collect_runs(root) if r.folder.resolve() in by_folder] if root.is_dir() else []
    if not records:
        raise SweepError(f"{spec.path}: no run of this sweep has finished under {root}: nothing to choose from")
    order = {p.output_dir.resolve(): i for i, p in enumerate(planned)}
    chosen = []
    for config, candidates in select_by_validation(summarize_runs(records, select_by), select_by).values():
        first = min(config.runs, key=lambda r: order[r.folder.resolve()])
        planned_run = by_folder[first.folder.resolve()]
        chosen.append((order[first.folder.resolve()], ChosenSetting(
            overrides=dict(planned_run.overrides), val_accuracy=config.mean("eval_accuracy"),
            n_settings=len(candidates),
        )))  # fmt: skip
    unfinished = [p.name for p in planned if p.status != "done"]
    return RepeatPlan(chosen=[c for _, c in sorted(chosen, key=lambda item: item[0])], unfinished=unfinished)


def repeat_sweep_text(
    spec: SweepSpec, plan: RepeatPlan, seeds: Sequence[int], target: str | os.PathLike[str], command: str
) -> str:
    """The stage-2 sweep file (YAML text) to be written at ``target``: ``spec``'s recipe (relative to ``target``'s
    folder), output folder, ``folds`` and ``set:``, the chosen configurations as one-value grids, ``seeds``."""
    if not seeds or len(set(seeds)) != len(seeds) or any(s < 0 for s in seeds):
        raise SweepError(f"--seeds must be distinct integers >= 0, got {list(seeds)}")
    recipe = os.path.relpath(spec.recipe, os.path.dirname(os.path.abspath(target)) or ".")
    lines = [
        f"# Written by `{command}`:",
        f"# the setting chosen on validation for each backbone × method of {spec.path} (highest mean validation",
        "# accuracy on the seeds all settings share, then lower validation NLL), repeated with more seeds into the",
        "# same folder, so the report groups each with its stage-1 run.",
    ]
    if plan.unfinished:
        lines.append(f"# {len(plan.unfinished)} run(s) of {spec.path} had not finished: their settings were not candidates.")
    lines += [
        f"recipe: {yaml_text(recipe)}",
        f"output_dir: {yaml_text(spec.output_dir)}",
        f"seeds: [{', '.join(str(s) for s in seeds)}]",
    ]
    if spec.folds is not None:  # the same folds, so that each new run pairs with its stage-1 twins
        lines.append(f"folds: {spec.folds}")
    if spec.set:
        lines.append("set:")
        lines += [f"  - {yaml_text(item)}" for item in spec.set]
    if all(not setting.overrides for setting in plan.chosen):  # a sweep without grids: the base recipe alone
        return "\n".join(lines) + "\n"
    lines.append("grids:")
    for setting in plan.chosen:
        cells = ", ".join(f"{key}: [{yaml_text(value)}]" for key, value in setting.overrides.items())
        lines.append(
            f"  - {{{cells}}}  # mean val {100 * setting.val_accuracy:.2f}%, best of {setting.n_settings} setting(s)"
        )
    return "\n".join(lines) + "\n"
