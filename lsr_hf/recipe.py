"""Recipes: one YAML file describes a whole training job, and it is checked completely before anything runs.

A recipe has six sections, each mapped onto a dataclass (or, for ``training``, onto the keyword arguments of
``transformers.TrainingArguments``)::

    extends: cifar100_lsr_os_tc.yaml     # optional: a base recipe, relative to this file (chains allowed)
    data:     {name: cifar100}           # lsr_hf.data.config.DataConfig
    model:    {name: cifar_resnet18, timm_kwargs: {drop_path_rate: 0.1}}   # lsr_hf.models.config.ModelConfig
    loss:     {method: lsr_os_tc, alpha: 0.5, temperature: 4.0}          # lsr_hf.losses.OSTCConfig
    training: {num_train_epochs: 200, learning_rate: 0.1}                # transformers.TrainingArguments
    schedule: {milestones: [60, 120, 160], gamma: 0.2}                   # lsr_hf.schedule.ScheduleConfig
    hub:      {push: false}                                              # HubConfig

A child recipe is deep-merged over its base: its keys override the base's, and mappings are merged key by key.
Command-line overrides (``--set loss.alpha=0.3``) are applied last; their values are read with ``yaml.safe_load``,
so ``5`` is an int, ``0.3`` a float, ``true`` a bool, ``null`` None and ``[a, b]`` a list. Two YAML 1.1 quirks:
``1e-3`` (no dot) is read as a string, which a float field accepts as 0.001; an unquoted ``no``/``yes``/``on``/``off``
is a boolean, so write ``eval_strategy: 'no'`` (the error says so).

Every key is checked against the dataclass it belongs to (names, types from the type hints, and the dataclass's own
range checks), and the training keys against ``TrainingArguments``, which is built once as a final check. Every
problem raises :class:`RecipeError` with the recipe path and the dotted key, e.g.
``recipes/x.yaml: loss.temperature must be > 0, got -1``.

Hub tokens never belong in a recipe (recipes are shared and stored next to results): a key named ``token`` or
``hub_token`` anywhere is rejected; the token comes from the ``HF_TOKEN`` environment variable or ``hf auth login``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import difflib
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from lsr_hf.errors import JobError
from lsr_hf.losses import METHOD_SPECS, METHODS, SMOOTHING_METHODS, OSTCConfig
from lsr_hf.schedule import ScheduleConfig
from lsr_hf.typecheck import as_written, dataclass_in, describe, fits, kind, plain, shown, suggest, type_hints

if TYPE_CHECKING:
    from transformers import TrainingArguments

    from lsr_hf.data.config import DataConfig
    from lsr_hf.models.config import ModelConfig

__all__ = [
    "HubConfig",
    "Recipe",
    "RecipeError",
    "add_recipe_arguments",
    "check_recipe",
    "flatten_recipe",
    "load_recipe",
    "recipe_from_args",
    "write_resolved",
]

SECTIONS = ("data", "model", "loss", "training", "schedule", "hub")
EXTENDS_KEY = "extends"
TOKEN_KEYS = frozenset({"token", "hub_token", "hf_token", "push_to_hub_token"})
TOKEN_ADVICE = (
    "tokens do not belong in a recipe (recipes are shared and saved next to the results); remove it and set the "
    "HF_TOKEN environment variable or run `hf auth login`"
)
# TrainingArguments fields that the hub section owns, so that there is one place to say where a model goes
HUB_OWNED_TRAINING_KEYS = {"push_to_hub": "hub.push", "hub_model_id": "hub.repo_id", "hub_private_repo": "hub.private"}
SET_ORIGIN = "--set"
RESOLVED_HEADER = "# Resolved recipe"  # the first line of a recipe.yaml that write_resolved wrote (lsr_hf.job.outputs)


# training keys checked beyond their types (TrainingArguments accepts these values, and the job then fails late):
# integers and their allowed ranges [low, high]
TRAINING_INT_RANGES = {
    "per_device_train_batch_size": (1, 2**31 - 1),
    "per_device_eval_batch_size": (1, 2**31 - 1),
    "gradient_accumulation_steps": (1, 2**31 - 1),
    "eval_accumulation_steps": (1, 2**31 - 1),
    "dataloader_num_workers": (0, 4096),
    "seed": (0, 2**32 - 1),
    "data_seed": (0, 2**32 - 1),
}
# step counts (an integer, or a float < 1: a fraction of the training steps) that must be > 0 when given
TRAINING_POSITIVE_STEPS = ("save_steps", "eval_steps", "logging_steps")


class RecipeError(JobError, ValueError):
    """A recipe is invalid. The message starts with the recipe path and names the offending key (exit status 2)."""


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, first: int, again: int) -> None:
        super().__init__(f"duplicate key {key!r} (lines {first} and {again})")
        self.key, self.first, self.again = key, first, again


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise _DuplicateKey(key, seen[key], line)
                seen[key] = line
            except TypeError:  # an unhashable key: SafeLoader's own error follows
                continue
        return super().construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _UniqueKeyLoader.construct_mapping)


def _load_yaml(text: str) -> Any:
    """``yaml.safe_load`` that rejects duplicate keys (``_DuplicateKey``, a ``yaml.YAMLError``)."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


@dataclass
class HubConfig:
    """Where the trained model goes on the Hugging Face Hub (``lsr_hf.job.hub``, docs/HUB.md). There is deliberately no
    token field: the token comes from the ``HF_TOKEN`` environment variable or ``hf auth login``."""

    push: bool = field(default=False, metadata={"help": "Push the final model (not the checkpoints) to the Hub."})
    repo_id: str | None = field(default=None, metadata={"help": "Hub repository, 'user/name'; required with push."})
    private: bool = field(default=False, metadata={"help": "Create the repository as private."})
    license: str = field(
        default="apache-2.0",
        metadata={"help": "The model card's license (a Hub license id: apache-2.0, mit, cc-by-4.0, other, ...)."},
    )

    def __post_init__(self) -> None:
        for name in ("push", "private"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        repo_id = self.repo_id
        if repo_id is not None and (not isinstance(repo_id, str) or not repo_id or any(c.isspace() for c in repo_id)):
            raise ValueError(f"repo_id must be a Hub repository id like 'user/name', got {self.repo_id!r}")
        if self.push and self.repo_id is None:
            raise ValueError("repo_id is required when push is true (e.g. repo_id: user/resnet18-cifar100-ostc)")
        license_ = self.license
        if not isinstance(license_, str) or not license_.strip() or any(c.isspace() for c in license_):
            raise ValueError(
                f"license must be a Hub license id like 'apache-2.0', 'mit' or 'other', got {self.license!r}"
            )


@dataclass
class Recipe:
    """A validated, fully resolved recipe (base recipes merged, ``--set`` overrides applied)."""

    data: DataConfig
    model: ModelConfig
    loss: OSTCConfig
    training: dict[str, Any]
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    hub: HubConfig = field(default_factory=HubConfig)
    # where it came from; not part of the recipe itself, so a recipe reloaded from write_resolved() compares equal
    source: str = field(default="", compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The resolved recipe as plain data (JSON/YAML-serialisable); loading it again gives an equal recipe."""
        return {
            "data": plain(dataclasses.asdict(self.data)),
            "model": plain(dataclasses.asdict(self.model)),
            "loss": plain(dataclasses.asdict(self.loss)),
            "training": plain(self.training),
            "schedule": plain(dataclasses.asdict(self.schedule)),
            "hub": plain(dataclasses.asdict(self.hub)),
        }

    def training_arguments(self, **overrides: Any) -> TrainingArguments:
        """``transformers.TrainingArguments`` from the ``training`` section and the hub section
        (``push_to_hub``, ``hub_model_id``, ``hub_private_repo``); keyword ``overrides`` win over both.
        On the CPU (``use_cpu``, or no accelerator) ``dataloader_pin_memory`` and ``accelerator_config.non_blocking``
        are turned off: there is nothing to pin or copy to, and torch / transformers would warn on every DataLoader."""
        import torch
        from transformers import TrainingArguments

        kwargs = copy.deepcopy(self.training)
        kwargs.update(push_to_hub=self.hub.push, hub_model_id=self.hub.repo_id, hub_private_repo=self.hub.private)
        kwargs.update(overrides)
        if kwargs.get("use_cpu") or not torch.accelerator.is_available():
            kwargs["dataloader_pin_memory"] = False
            if isinstance(kwargs.get("accelerator_config"), dict):
                kwargs["accelerator_config"] = {**kwargs["accelerator_config"], "non_blocking": False}
        return TrainingArguments(**kwargs)


def load_recipe(path: str | Path, overrides: Sequence[str] = ()) -> Recipe:
    """Reads, merges and validates a recipe; raises :class:`RecipeError` on any problem, before data is touched.

    Args:
        path: the recipe YAML file. Its ``extends:`` (if any) is resolved relative to the file's folder.
        overrides: ``--set`` strings ``SECTION.KEY[.SUBKEY...]=VALUE``, applied in order after merging. A value
            replaces what was there (a mapping included); set one entry of a mapping with a longer key, e.g.
            ``model.timm_kwargs.drop_path_rate=0.1``.

    Building ``TrainingArguments`` for the final check touches no network and creates no folder, but, like any
    ``TrainingArguments``, it sets up accelerate's process state (the distributed group under a launcher).
    """
    shown = str(path)
    raw, origins = _read_with_bases(Path(path), shown)
    file_is_empty = not raw
    for item in overrides:
        _apply_override(raw, origins, item, shown)
    # an empty file that --set fills with at most the output folder would train at every default
    if not raw or (file_is_empty and set(flatten_recipe(raw)) <= {"training.output_dir"}):
        raise RecipeError(
            f"{shown}: the recipe is empty; a recipe has the sections {', '.join(SECTIONS)} and an optional "
            f"{EXTENDS_KEY} (e.g. {EXTENDS_KEY}: demo_ostc.yaml; see the recipes/ folder)"
        )
    where = _Where(shown, origins)

    types_ = _section_types()
    data = _build_dataclass(types_["data"], raw.get("data", {}), "data", where)
    model = _build_dataclass(types_["model"], raw.get("model", {}), "model", where)
    loss = _build_dataclass(types_["loss"], raw.get("loss", {}), "loss", where)
    schedule = _build_dataclass(types_["schedule"], raw.get("schedule", {}), "schedule", where)
    hub = _build_dataclass(types_["hub"], raw.get("hub", {}), "hub", where)
    training = _check_training(raw.get("training", {}), f"outputs/{Path(path).stem}", where)

    smoothing = training.get("label_smoothing_factor") or 0.0
    if smoothing > 0 and loss.method in SMOOTHING_METHODS:
        raise where.error(
            f"training.label_smoothing_factor={smoothing!r} with loss.method={loss.method!r} would smooth the labels "
            "twice; remove training.label_smoothing_factor and set the smoothing in the loss section (loss.alpha)",
            "training.label_smoothing_factor",
        )

    recipe = Recipe(
        data=data, model=model, loss=loss, training=training, schedule=schedule, hub=hub, source=shown
    )
    for key, message in recipe_problems(recipe):
        raise where.error(message, key)
    try:  # TrainingArguments' own checks (strategies, scheduler names, precision flags, ...); no network
        recipe.training_arguments()
    except (ValueError, TypeError, OSError, ImportError) as err:
        raise RecipeError(f"{shown}: training: {err}") from err
    return recipe


def check_recipe(recipe: Recipe) -> None:
    """Raises :class:`RecipeError` for the first of ``recipe_problems`` (``load_recipe`` runs the same checks;
    ``lsr_hf.job.train.run`` runs them again for a recipe built in code)."""
    for _, message in recipe_problems(recipe):
        raise RecipeError(f"{recipe.source or 'recipe'}: {message}")


def recipe_problems(recipe: Recipe) -> list[tuple[str, str]]:
    """(dotted key, message) for every value the sections' own checks cannot judge alone and that would otherwise
    fail only once the data is loaded or training runs: a model timm does not know, ``kd`` without a teacher,
    ``correct_prob`` below 1/K for a built-in dataset's K, training lengths, batch sizes and step counts out of
    range, non-finite numbers. Nothing is loaded or written."""
    problems: list[tuple[str, str]] = []
    model_problem = _model_name_problem(recipe.model.name, recipe.model.pretrained)
    if model_problem is not None:
        problems.append(("model.name", model_problem))
    if recipe.loss.spec.teacher == "logits":
        method = recipe.loss.method
        others = ", ".join(m for m in METHODS if METHOD_SPECS[m].teacher != "logits")
        problems.append((
            "loss.method",
            f"loss.method {method!r} needs a teacher model, which a recipe cannot give ({method} is for code: "
            f"OSTCTrainer(..., teacher_model=...)); choose one of {others}",
        ))  # fmt: skip
    if getattr(recipe.data, "builtin", False):
        from lsr_hf.data.specs import get_spec

        num_classes = get_spec(recipe.data.name).num_classes
        try:
            recipe.loss.check_num_classes(num_classes)
        except ValueError as err:
            problems.append(("loss.correct_prob", f"loss.{err} ({recipe.data.name})"))
    problems.extend(_training_problems(recipe.training))
    return problems


def _model_name_problem(name: str, pretrained: bool) -> str | None:
    import timm

    import lsr_hf.models.cifar  # noqa: F401  (registers the cifar_* models with timm)

    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        return (
            f"model.name {name!r} is not a timm model{hint}; any name of timm.list_models() works, and lsr-hf's "
            "cifar_* models (cifar_resnet18, cifar_mobilenetv2, ...)"
        )
    if pretrained and not timm.is_model_pretrained(name):
        return f"model.pretrained is true but timm has no pretrained weights for {name!r}; set it to false"
    return None


def _training_problems(training: Mapping[str, Any]) -> list[tuple[str, str]]:
    problems = []
    for name, value in training.items():
        if isinstance(value, float) and not math.isfinite(value):
            problems.append((f"training.{name}", f"training.{name} must be a finite number, got {value!r}"))
    for name, (low, high) in TRAINING_INT_RANGES.items():
        value = training.get(name)
        if isinstance(value, int) and not low <= value <= high:
            problems.append((f"training.{name}", f"training.{name} must be an integer in [{low}, {high}], got {value}"))
    for name in TRAINING_POSITIVE_STEPS:
        value = training.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value <= 0:
            problems.append((
                f"training.{name}",
                f"training.{name} must be > 0 (a number of steps, or a fraction < 1 of the training steps), got {value}",
            ))  # fmt: skip
    learning_rate = training.get("learning_rate")
    if isinstance(learning_rate, (int, float)) and not isinstance(learning_rate, bool) and learning_rate <= 0:
        problems.append(("training.learning_rate", f"training.learning_rate must be > 0, got {learning_rate}"))
    max_steps, epochs = training.get("max_steps", -1), training.get("num_train_epochs", 3.0)
    if isinstance(max_steps, int) and max_steps <= 0 and isinstance(epochs, (int, float)) and not epochs > 0:
        problems.append((
            "training.num_train_epochs",
            f"training.num_train_epochs must be > 0 when training.max_steps is not set (it is {max_steps}), got "
            f"{epochs}: the run would train 0 steps; set one of them",
        ))  # fmt: skip
    return problems


def flatten_recipe(node: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A recipe dict (``Recipe.to_dict()``, or one read back from ``results.json``) with dotted keys:
    ``{"loss": {"alpha": 0.3}}`` → ``{"loss.alpha": 0.3}``. An empty mapping stays a value."""
    flat: dict[str, Any] = {}
    for key, value in node.items():
        if isinstance(value, Mapping) and value:
            flat.update(flatten_recipe(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def write_resolved(recipe: Recipe, path: str | Path) -> Path:
    """Writes the resolved recipe as YAML (e.g. next to the outputs); ``load_recipe`` on it gives an equal recipe."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    source = recipe.source.replace("\n", " ")
    header = f"{RESOLVED_HEADER} (base recipes merged, --set overrides applied) from: {source}\n"
    path.write_text(header + yaml.safe_dump(recipe.to_dict(), sort_keys=False), encoding="utf-8")
    return path


def add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds ``--recipe PATH`` (required), ``--set KEY=VALUE`` (repeatable, dest ``overrides``), ``--resume`` and
    ``--overwrite`` (what to do with an earlier run in ``training.output_dir``; see ``lsr_hf.job.outputs``)."""
    parser.add_argument("--recipe", required=True, metavar="PATH", help="Recipe YAML file (see recipes/).")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=None,
        metavar="KEY=VALUE",
        help="Override a recipe value, e.g. --set loss.alpha=0.3 --set training.num_train_epochs=5 "
        "(values are read as YAML). Repeatable.",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="Resume from the last complete checkpoint in training.output_dir (a finished run is left as it is).",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="Delete an earlier run in training.output_dir and train from scratch (with --resume: only when there "
        "is no complete checkpoint).",
    )


def recipe_from_args(args: argparse.Namespace) -> Recipe:
    """The recipe named by parsed :func:`add_recipe_arguments` arguments, with its ``--set`` overrides."""
    return load_recipe(args.recipe, args.overrides or ())


# ----------------------------------------------------------------------------------------------------------------
# reading files: extends chains, merging, overrides


def _section_types() -> dict[str, type]:
    """The dataclass behind each dataclass-backed section (imported here to keep ``import lsr_hf.recipe`` light)."""
    from lsr_hf.data.config import DataConfig
    from lsr_hf.models.config import ModelConfig

    return {
        "data": DataConfig,
        "model": ModelConfig,
        "loss": OSTCConfig,
        "schedule": ScheduleConfig,
        "hub": HubConfig,
    }


def _read_with_bases(path: Path, shown: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The recipe with its ``extends`` chain merged in, and the file (as shown to the user) that set each key."""
    chain: list[tuple[str, dict[str, Any]]] = []  # (shown path, sections), child first
    visited: list[tuple[Path, str]] = []
    referrer: str | None = None
    while True:
        resolved = path.resolve()
        if any(resolved == seen for seen, _ in visited):
            cycle = " -> ".join([s for _, s in visited] + [shown])
            raise RecipeError(f"{visited[0][1]}: extends cycle: {cycle}")
        visited.append((resolved, shown))
        sections = _read_file(path, shown, referrer)
        base = sections.pop(EXTENDS_KEY, None)
        chain.append((shown, sections))
        if base is None:
            break
        if not isinstance(base, str) or not base.strip():
            raise RecipeError(f"{shown}: extends must be the path of a base recipe, got {base!r}")
        referrer = shown
        path = path.parent / base
        shown = os.path.normpath(os.path.join(os.path.dirname(shown), base))

    merged: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for shown_path, sections in reversed(chain):
        merged = _deep_merge(merged, sections)
        _record_origins(sections, shown_path, origins)
    return merged, origins


def _read_file(path: Path, shown: str, referrer: str | None) -> dict[str, Any]:
    """One recipe file: a mapping of known sections (each a mapping), free of tokens."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if referrer is not None:
            raise RecipeError(f"{referrer}: extends: base recipe {shown} not found") from None
        raise RecipeError(f"{shown}: recipe file not found") from None
    except OSError as err:
        raise RecipeError(f"{shown}: cannot read the recipe: {err}") from err
    try:
        content = _load_yaml(text)
    except _DuplicateKey as err:
        raise RecipeError(
            f"{shown}: key {err.key!r} is given twice (lines {err.first} and {err.again}); YAML would keep only the "
            "last one: remove one of them"
        ) from err
    except yaml.YAMLError as err:
        raise RecipeError(f"{shown}: not valid YAML: {err}") from err
    if content is None:
        content = {}
    if not isinstance(content, dict):
        raise RecipeError(
            f"{shown}: a recipe must be a mapping of sections ({', '.join(SECTIONS)}), got {kind(content)}"
        )
    _reject_tokens(content, shown, "")
    sections: dict[str, Any] = {}
    for key, value in content.items():
        if key == EXTENDS_KEY:
            sections[key] = value
            continue
        if key not in SECTIONS:
            raise RecipeError(
                f"{shown}: unknown top-level key {key!r}{suggest(str(key), (*SECTIONS, EXTENDS_KEY))}; "
                f"a recipe has the sections {', '.join(SECTIONS)} and an optional {EXTENDS_KEY}"
            )
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise RecipeError(f"{shown}: section {key} must be a mapping of keys to values, got {kind(value)}")
        sections[key] = value
    return sections


def _reject_tokens(node: Any, shown: str, prefix: str) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            dotted = f"{prefix}{key}"
            if str(key).lower() in TOKEN_KEYS:
                raise RecipeError(f"{shown}: {dotted}: {TOKEN_ADVICE}")
            _reject_tokens(value, shown, dotted + ".")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _reject_tokens(value, shown, f"{prefix}{index}.")


def _deep_merge(base: Mapping[str, Any], child: Mapping[str, Any]) -> dict[str, Any]:
    """A new mapping: ``child`` over ``base``, mappings merged recursively, everything else replaced."""
    merged = dict(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _record_origins(node: Mapping[str, Any], origin: str, origins: dict[str, str], prefix: str = "") -> None:
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            _record_origins(value, origin, origins, dotted + ".")
        else:
            origins[dotted] = origin


def _apply_override(raw: dict[str, Any], origins: dict[str, str], item: str, shown: str) -> None:
    """Applies one ``--set SECTION.KEY[.SUBKEY...]=VALUE`` to the merged recipe."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise RecipeError(f"{shown}: --set {item!r}: expected KEY=VALUE, e.g. --set loss.alpha=0.3")
    parts = key.split(".")
    # messages name the key only: the value may be something that must not be printed
    if len(parts) < 2 or not all(parts):
        raise RecipeError(f"{shown}: --set {key!r}: the key must be SECTION.NAME, e.g. loss.alpha")
    if parts[0] not in SECTIONS:
        raise RecipeError(
            f"{shown}: --set {key!r}: unknown section {parts[0]!r}{suggest(parts[0], SECTIONS)}; "
            f"the sections are {', '.join(SECTIONS)}"
        )
    for index, part in enumerate(parts):
        if part.lower() in TOKEN_KEYS:
            raise RecipeError(f"{shown}: {'.'.join(parts[: index + 1])}: {TOKEN_ADVICE}")
    try:
        value = _load_yaml(text)
    except _DuplicateKey as err:
        raise RecipeError(f"{shown}: --set {key}: key {err.key!r} is given twice in the value") from err
    except yaml.YAMLError as err:
        raise RecipeError(f"{shown}: --set {key}: the value is not valid YAML: {err}") from err
    _reject_tokens(value, shown, key + ".")

    node = raw.setdefault(parts[0], {})
    for depth, part in enumerate(parts[1:-1], start=2):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise RecipeError(f"{shown}: --set {key}: {'.'.join(parts[:depth])} is {kind(child)}, not a mapping")
        node = child
    node[parts[-1]] = value  # replaces the old value, a mapping included (extends merges; --set sets)
    for stale in [k for k in origins if k.startswith(key + ".")]:
        del origins[stale]
    origins[key] = SET_ORIGIN
    if isinstance(value, dict):
        _record_origins(value, SET_ORIGIN, origins, key + ".")


# ----------------------------------------------------------------------------------------------------------------
# validation


@dataclass
class _Where:
    """Formats errors: the recipe path first, and where a key came from when that is not the recipe itself."""

    path: str
    origins: dict[str, str]

    def error(self, message: str, key: str | None = None) -> RecipeError:
        return RecipeError(f"{self.path}: {message}{self._origin_note(key)}")

    def _origin_note(self, key: str | None) -> str:
        if key is None:
            return ""
        origin = self.origins.get(key)
        if origin is None:  # a mapping-valued key: name its origin only when all of its entries share one
            inner = {o for k, o in self.origins.items() if k.startswith(key + ".")}
            origin = inner.pop() if len(inner) == 1 else None
        if origin is None or origin == self.path:
            return ""
        return " (from --set)" if origin == SET_ORIGIN else f" (set in {origin})"


def _build_dataclass(cls: type, values: Mapping[str, Any], dotted: str, where: _Where) -> Any:
    """Checks ``values`` against the fields and type hints of ``cls`` and constructs it; range errors raised by
    its ``__post_init__`` come back prefixed with the recipe path and the dotted key."""
    fields_ = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = type_hints(cls)
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        key = f"{dotted}.{name}"
        if name not in fields_:
            valid = ", ".join(fields_)
            raise where.error(f"unknown key {key}{suggest(str(name), fields_, dotted)}; {dotted} has: {valid}", key)
        hint = hints.get(name, Any)
        nested = dataclass_in(hint)
        if nested is not None and isinstance(value, dict):
            kwargs[name] = _build_dataclass(nested, value, key, where)
        else:
            kwargs[name] = _check_value(value, hint, key, where)
    for f in fields_.values():
        if f.name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise where.error(f"{dotted}.{f.name} is required")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as err:
        message = str(err)
        name = max((n for n in fields_ if re.match(rf"{re.escape(n)}\b", message)), key=len, default=None)
        if name is None:
            raise where.error(f"{dotted}: {message}") from err
        message = as_written(message, values.get(name))
        raise where.error(f"{dotted}.{message}", f"{dotted}.{name}") from err


def _check_training(values: Mapping[str, Any], default_output_dir: str, where: _Where) -> dict[str, Any]:
    """The ``training`` section: names and simple types checked against ``transformers.TrainingArguments``."""
    from transformers import TrainingArguments

    fields_ = [f.name for f in dataclasses.fields(TrainingArguments) if f.init]
    known = set(fields_)
    hints = type_hints(TrainingArguments)
    checked: dict[str, Any] = {}
    for name, value in values.items():
        key = f"training.{name}"
        if name in HUB_OWNED_TRAINING_KEYS:
            raise where.error(f"{key} is set by the hub section: use {HUB_OWNED_TRAINING_KEYS[name]} instead", key)
        if name not in known:
            raise where.error(
                f"unknown key {key}{suggest(str(name), fields_, 'training')}; "
                "the training keys are the fields of transformers.TrainingArguments",
                key,
            )
        checked[name] = _check_value(value, hints.get(name, Any), key, where)
    if checked.get("output_dir") is None:
        checked["output_dir"] = default_output_dir
    return checked


def _check_value(value: Any, hint: Any, key: str, where: _Where) -> Any:
    """``value`` if it fits ``hint`` (list→tuple and undotted-exponent strings→float converted), else an error."""
    ok, converted = fits(value, hint)
    if ok:
        return converted
    message = f"{key} must be {describe(hint)}, got {shown(value)} ({kind(value)})"
    if isinstance(value, bool) and fits("no", hint)[0]:
        message += "; YAML reads unquoted yes/no/on/off as booleans: quote the text, e.g. 'no'"
    raise where.error(message, key)
