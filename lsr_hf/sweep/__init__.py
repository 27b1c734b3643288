"""Sweeps: many training runs from one base recipe, then tables and plots of their results.

A sweep file (YAML) names a base recipe, the seeds, overrides shared by every run and grids of overrides::

    recipe: ../recipes/base/demo.yaml   # the base recipe, relative to THIS file (like a recipe's `extends:`)
    output_dir: outputs/sweeps/demo     # optional, relative to the working directory (like training.output_dir);
                                        # default outputs/sweeps/<sweep file name>
    seeds: [0, 1, 2]                    # optional, default [0]: every configuration is run once per seed
    folds: 5                            # optional: k-fold cross-validation, every configuration × seed once per
                                        # fold (data.num_folds=5, data.fold=0..4; a dataset without a test split)
    set:                                # optional: `--set`-style overrides applied to every run (values are YAML)
      - training.num_train_epochs=5
      - training.save_strategy='no'     # quote yes/no/on/off, which YAML reads as booleans
    grids:                              # optional (default: the base recipe alone)
      - model.name: [resnet10t, mobilenetv2_050]
        loss.method: [ce, lsr]
      - model.name: [resnet10t, mobilenetv2_050]
        loss.method: [lsr_os]
        loss.alpha: [0.5, 0.9]
        loss.temperature: [2.0, 8.0]

Each grid is a mapping ``dotted.key: [values...]`` expanded as a cartesian product; the configurations of all grids
are united, in file order, and duplicates are dropped: first identical override sets, then — once every run's recipe
has been loaded — runs whose resolved recipes are identical. Grid values are YAML scalars; structured values go in
``set:``. The sweep owns ``training.output_dir``, ``training.seed`` (use ``seeds:``), ``data.num_folds`` and
``data.fold`` (use ``folds:``), so none of them may be set.

Every run's recipe is loaded and checked (:func:`lsr_hf.recipe.load_recipe`) before the first run starts. Runs are
ordered seed by seed (every configuration with the first seed, then with the second, ...; within a seed fold by
fold) and go
to ``<output_dir>/<run name>``, a flat, stable name built from the grid overrides and the seed, e.g.
``model.name=resnet10t,loss.method=lsr_os,loss.alpha=0.5,loss.temperature=2.0,seed=0`` (``data.name``,
``model.name`` and ``loss.method`` first, then the other keys alphabetically; a value with characters outside
``[A-Za-z0-9._+-]`` is sanitised and the name gets a ``~<hash>`` suffix so that it stays unique; a k-fold run has
``fold=<k>`` before the seed). A run whose
``results.json`` exists is skipped (after checking that it was made from the same recipe), an unfinished run resumes
from its last checkpoint if it has one and restarts otherwise. Runs execute through :func:`lsr_hf.job.train.run` (what
``scripts/train.py`` runs): by default in this process, one after the other; with ``backend="ray"`` each run is a Ray
task with its own CPUs/GPUs, side by side on this machine or over a cluster (:mod:`lsr_hf.sweep.ray_backend`). With
either backend a failed run is reported (name, error, log) and the others go on; :class:`SweepFailure` is raised at
the end. A progress line follows every finished run (done / running / failed / left, elapsed, estimate).

:func:`write_report` reads every ``results.json`` under a folder, groups the runs that differ only in their seed (and
fold) and writes ``results.md``, ``results.csv`` and PNG plots (see its docstring); a k-fold sweep's report also
pools each seed's out-of-fold test predictions (:mod:`lsr_hf.sweep.folds`).
"""

from lsr_hf.sweep.common import SweepError
from lsr_hf.sweep.report import write_report
from lsr_hf.sweep.results import (
    ConfigResult,
    RunRecord,
    collect_runs,
    select_by_validation,
    summarize_runs,
)
from lsr_hf.sweep.ray_backend import RayOptions
from lsr_hf.sweep.execute import SweepFailure, SweepProgress
from lsr_hf.sweep.plan import PlannedRun, plan_sweep
from lsr_hf.sweep.run import run_sweep
from lsr_hf.sweep.spec import SweepSpec, expand_grids, load_sweep, run_name

__all__ = [
    "ConfigResult",
    "PlannedRun",
    "RayOptions",
    "RunRecord",
    "SweepError",
    "SweepFailure",
    "SweepProgress",
    "SweepSpec",
    "collect_runs",
    "expand_grids",
    "load_sweep",
    "plan_sweep",
    "run_name",
    "run_sweep",
    "select_by_validation",
    "summarize_runs",
    "write_report",
]
