"""What the sweep modules share: file names, the loss parameters of each method, helpers on recipe dicts."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lsr_hf.losses import METHOD_SPECS, METHODS, PARAM_SYMBOLS
from lsr_hf.recipe import flatten_recipe

SWEEP_KEYS = ("recipe", "output_dir", "seeds", "folds", "set", "grids")
RUN_OWNED_KEYS = ("training.output_dir", "training.seed", "data.num_folds", "data.fold")  # set per run by the sweep
NAME_FIRST_KEYS = ("data.name", "model.name", "loss.method")  # run names start with these, the rest alphabetical
MAX_NAME_LENGTH = 150
DOTTED_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")
UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._+-]")

# report: the loss hyperparameters each method uses (the others are ignored by the objective)
# all from the method table of lsr_hf.losses (METHOD_SPECS): a new method needs nothing here
METHOD_ORDER = METHODS
METHOD_PARAMS: dict[str, tuple[str, ...]] = {name: spec.params for name, spec in METHOD_SPECS.items()}
LOSS_PARAMS = tuple(PARAM_SYMBOLS)
# (results.json metric, CSV column stem, Markdown header, scale for Markdown, decimals)
METRICS = (
    ("eval_accuracy", "val_accuracy", "val acc (%)", 100.0, 2),
    ("eval_nll", "val_nll", "val NLL", 1.0, 4),
    ("test_accuracy", "test_accuracy", "test acc (%)", 100.0, 2),
    ("test_ece", "test_ece", "test ECE (%)", 100.0, 2),
    ("test_nll", "test_nll", "test NLL", 1.0, 4),
    ("train_seconds_per_epoch", "seconds_per_epoch", "s/epoch", 1.0, 1),
)
STAT_METRICS = tuple(m[0] for m in METRICS)


@dataclass(frozen=True)
class SelectionCriterion:
    """How a method's setting is chosen on the validation split: ``metric`` (a results.json key), better when
    higher or lower, the other metric that breaks ties, and the words the report and plots use."""

    metric: str
    higher_is_better: bool
    tie_break: str
    words: str  # "mean validation accuracy"
    label: str  # colour-bar label of the heatmaps
    scale: float  # for the heatmaps' cells


SELECTION_CRITERIA = {
    "accuracy": SelectionCriterion("eval_accuracy", True, "eval_nll", "mean validation accuracy",
                                   "validation accuracy (%)", 100.0),
    "nll": SelectionCriterion("eval_nll", False, "eval_accuracy", "mean validation NLL", "validation NLL (nats)", 1.0),
}  # fmt: skip
DEFAULT_SELECTION = "accuracy"


def selection_criterion(select_by: str) -> SelectionCriterion:
    """The criterion named ``select_by`` (a key of ``SELECTION_CRITERIA``); a SweepError names the choices."""
    if select_by not in SELECTION_CRITERIA:
        raise SweepError(f"select_by must be one of {', '.join(SELECTION_CRITERIA)}, got {select_by!r}")
    return SELECTION_CRITERIA[select_by]
# recipe entries that differ between the runs of one configuration, or that do not change what is trained
BOOKKEEPING_KEYS = ("training.output_dir", "training.seed", "data.fold", "training.logging_dir", "training.run_name")
BOOKKEEPING_SECTIONS = ("hub",)
HEATMAP_METHODS = tuple(name for name, spec in METHOD_SPECS.items() if spec.tempered_student)  # an (α, τ) grid


class SweepError(ValueError):
    """A sweep file, a sweep plan or a results folder is invalid; the message says which file and key."""


def sort_key(value: Any) -> tuple[int, Any]:
    if is_number(value):
        return (0, float(value))
    if isinstance(value, tuple):  # a (seed, fold) replicate: element by element
        return (2, tuple(sort_key(v) for v in value))
    return (1, json.dumps(value, sort_keys=True))


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))


def recipe_view(recipe: Mapping[str, Any], drop: Sequence[str], drop_sections: Sequence[str] = ()) -> dict[str, Any]:
    """What a recipe dict trains, flattened to dotted keys: without the ``drop`` keys, the ``drop_sections`` and
    the loss parameters its method does not use (``METHOD_PARAMS``: ce's alpha, lsr's temperature, ...)."""
    flat = flatten_recipe(json.loads(json.dumps(recipe)))
    kept = {k: v for k, v in flat.items() if k not in drop and k.split(".")[0] not in drop_sections}
    used = METHOD_PARAMS.get(str(flat.get("loss.method")))
    if used is not None:
        for unused in set(LOSS_PARAMS) - set(used):
            kept.pop(f"loss.{unused}", None)
    return kept


def recipe_identity(recipe: Mapping[str, Any], drop: Sequence[str], drop_sections: Sequence[str] = ()) -> str:
    """A canonical text of :func:`recipe_view`: equal for recipes that train the same thing."""
    return json.dumps(recipe_view(recipe, drop, drop_sections), sort_keys=True)


def compact_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
