"""The report of a sweep folder: ``results.md`` and ``results.csv``, plus the plots."""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lsr_hf.sweep.across import AcrossRow, across_backbones
from lsr_hf.sweep.common import (
    DEFAULT_SELECTION,
    LOSS_PARAMS,
    METRICS,
    SweepError,
    compact_value,
    selection_criterion,
)
from lsr_hf.sweep.folds import VOTES, PooledRow, pooled_rows
from lsr_hf.sweep.paired import PAIRED_METRICS, PairedRow, paired_differences
from lsr_hf.sweep.plots import write_heatmaps, write_reliability
from lsr_hf.sweep.results import ConfigResult, RunRecord, collect_runs, summarize_runs
from lsr_hf.sweep.transfer import TransferRow, summarize_transfer, transfer_rows
from lsr_hf.job.outputs import RESULTS_FILE


def write_report(directory: str | os.PathLike[str], select_by: str = DEFAULT_SELECTION) -> list[Path]:
    """Regenerates the report of every finished run under ``directory`` (from ``results.json`` and
    ``test_predictions.npz`` alone) and returns the paths written:

    * ``results.csv``: one row per configuration (runs equal up to seed): dataset, backbone, method, setting, the
      loss parameters the method uses, any other recipe keys that differ between configurations, n, seeds, mean and
      sample std (ddof = 1) of validation accuracy, test accuracy, test ECE and test NLL (fractions, nats),
      ``selected`` (the setting chosen for its method × backbone on validation, by ``select_by``: "accuracy", the
      default, or "nll"; see :func:`lsr_hf.sweep.results.select_by_validation`), ``n_settings`` and the
      run folders.
    * ``results.md``: the summary (one row per method × backbone: the validation-selected setting and its test
      numbers), the backbone recipes (recipe keys set per backbone, e.g. its optimizer; see
      :func:`lsr_hf.sweep.results.summarize_runs`) when there are any, each chosen setting against ce on the
      same backbone paired by seed (:mod:`lsr_hf.sweep.paired`) when a backbone has both, each setting's gain over
      ce on validation across backbones (:mod:`lsr_hf.sweep.across`) when ≥ 2 backbones have ce, then every configuration,
      as mean ± std over seeds, accuracies and ECE in %.
    * for a k-fold sweep, a "Pooled over folds" section in ``results.md``: each seed's test predictions of all k
      folds scored as one set, per clip vote for audio (:mod:`lsr_hf.sweep.folds`).
    * ``heatmap_<method>_<backbone>.png`` for lsr_os, lsr_os_tc and kd when their (α, τ) grid has at least two
      points: the validation metric the selection uses (mean over the seeds every setting has) over α (rows) ×
      τ (columns), one panel per value of the other parameters (lsr_os_tc:
      one panel per correct_prob a), the validation-selected setting outlined; skipped without (α, τ) variation.
    * ``transfer.csv`` (when a method was swept on several backbones): for each method, source backbone and target
      backbone, the setting chosen on the source applied to the target against the target's own choice
      (:mod:`lsr_hf.sweep.transfer`); ``results.md`` then has a Transfer section with these rows and a per-method
      summary (mean and largest loss of test accuracy).
    * ``reliability_<backbone>.png``: a reliability diagram (15 equal-width confidence bins), one curve per method
      at its selected setting with the test predictions of all its seeds pooled, and the ECE of the pooled
      predictions in the legend; methods without saved predictions are left out.

    With several datasets under ``directory`` the plot names get a ``<dataset>_`` prefix after the plot kind.
    Plots left by an earlier report (``heatmap_*.png``, ``reliability_*.png`` in ``directory``) are replaced.
    Plots need matplotlib (the ``plots`` extra); without it the tables are still written.
    """
    selection_criterion(select_by)  # an unknown criterion fails before any file is read
    root = Path(directory)
    records = collect_runs(root)
    if not records:
        raise SweepError(f"{root}: no {RESULTS_FILE} found under this folder (no finished runs)")
    configs = summarize_runs(records, select_by)
    transfers = transfer_rows(configs, select_by)
    written = [_write_csv(root / "results.csv", root, configs)]
    stale_transfer = root / "transfer.csv"
    if transfers:
        written.append(_write_transfer_csv(stale_transfer, transfers))
    elif stale_transfer.exists():
        stale_transfer.unlink()
    for stale in [*root.glob("heatmap_*.png"), *root.glob("reliability_*.png")]:  # from an earlier report
        stale.unlink()
    plots: list[Path] = []
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        plots_note = "matplotlib is not installed (pip install 'lsr-hf[plots]'): no plots"
    else:
        plots_note = ""
        several = len({c.dataset for c in configs}) > 1
        plots += write_heatmaps(root, configs, several, select_by)
        plots += write_reliability(root, configs, several)
    written.append(
        _write_markdown(root / "results.md", root, records, configs, transfers, plots, plots_note, select_by)
    )
    return written + plots


def _format_stat(mean: float, std: float, scale: float, decimals: int, signed: bool = False) -> str:
    """``mean ± std`` scaled, '–' for a missing mean; ``signed`` always shows the sign (a difference: +0.50 ± 0.20)."""
    if not math.isfinite(mean):
        return "–"
    text = f"{mean * scale:{'+' if signed else ''}.{decimals}f}"
    return text + (f" ± {std * scale:.{decimals}f}" if math.isfinite(std) else "")


def _other_keys(configs: Sequence[ConfigResult]) -> list[str]:
    keys: list[str] = []
    for config in configs:
        keys += [k for k in [*config.params, *config.backbone_recipe] if not k.startswith("loss.") and k not in keys]
    return keys


def _write_csv(path: Path, root: Path, configs: Sequence[ConfigResult]) -> Path:
    others = _other_keys(configs)
    header = ["dataset", "backbone", "method", "setting", *LOSS_PARAMS, *others, "n", "seeds"]
    for _, column, *_ in METRICS:
        header += [f"{column}_mean", f"{column}_std"]
    header += ["selected", "n_settings", "runs"]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for config in configs:
            keys = {**config.backbone_recipe, **config.params}
            row: list[Any] = [config.dataset, config.backbone, config.method, config.setting]
            row += [_csv_value(config.params.get(f"loss.{p}", "")) for p in LOSS_PARAMS]
            row += [_csv_value(keys.get(k, "")) for k in others]
            row += [config.n, " ".join(str(r.replicate) for r in config.runs)]
            for metric, *_ in METRICS:
                row += [_csv_value(v) for v in config.stats[metric]]
            row += [config.selected, config.n_settings, ";".join(str(r.folder.relative_to(root)) for r in config.runs)]
            writer.writerow(row)
    return path


def _write_transfer_csv(path: Path, rows: Sequence[TransferRow]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["dataset", "method", "source", "target", "setting", "own_setting", "seeds", "transferred_test_accuracy",
             "own_test_accuracy", "loss"]
        )  # fmt: skip
        for row in rows:
            writer.writerow(
                [row.dataset, row.method, row.source, row.target, row.setting, row.own_setting,
                 " ".join(str(s) for s in row.seeds), _csv_value(row.transferred_accuracy),
                 _csv_value(row.own_accuracy), _csv_value(row.loss)]
            )  # fmt: skip
    return path


def _transfer_lines(rows: Sequence[TransferRow], several: bool) -> list[str]:
    lead = ["dataset"] if several else []
    lines = [
        "## Transfer",
        "",
        "Each method's setting chosen on one backbone's validation split (the source), applied unchanged to another "
        "backbone (the target), against the target's own validation-chosen setting. Test accuracy in %, mean over "
        "the seeds both settings were run with; loss = own − transferred, in points.",
        "",
        _md_row([*lead, "method", "pairs", "setting changed", "mean loss", "largest loss"]),
        _md_row(["---"] * (len(lead) + 5)),
    ]
    for summary in summarize_transfer(rows):
        lines.append(
            _md_row(
                [*([summary.dataset] if several else []), summary.method, str(summary.pairs),
                 f"{summary.changed} of {summary.pairs}", _format_stat(summary.mean_loss, math.nan, 100.0, 2),
                 _format_stat(summary.max_loss, math.nan, 100.0, 2)]
            )
        )  # fmt: skip
    lines += [
        "",
        _md_row([*lead, "method", "source → target", "transferred setting", "own setting", "seeds",
                 "transferred test acc (%)", "own test acc (%)", "loss (points)"]),
        _md_row(["---"] * (len(lead) + 8)),
    ]  # fmt: skip
    for row in rows:
        lines.append(
            _md_row(
                [*([row.dataset] if several else []), row.method, f"{row.source} → {row.target}", row.setting,
                 row.own_setting, " ".join(str(s) for s in row.seeds) or "all",
                 _format_stat(row.transferred_accuracy, math.nan, 100.0, 2),
                 _format_stat(row.own_accuracy, math.nan, 100.0, 2), _format_stat(row.loss, math.nan, 100.0, 2)]
            )
        )  # fmt: skip
    return lines + [""]


def _csv_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    if value is None:
        return "null"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return value


def _write_markdown(
    path: Path,
    root: Path,
    records: Sequence[RunRecord],
    configs: Sequence[ConfigResult],
    transfers: Sequence[TransferRow],
    plots: Sequence[Path],
    plots_note: str,
    select_by: str = DEFAULT_SELECTION,
) -> Path:
    criterion = selection_criterion(select_by)
    tie_words = "higher validation accuracy" if criterion.tie_break == "eval_accuracy" else "lower validation NLL"
    regenerate = f"python scripts/sweep.py report {root}"
    if select_by != DEFAULT_SELECTION:
        regenerate += f" --select-by {select_by}"
    several = len({c.dataset for c in configs}) > 1
    lead = ["dataset"] if several else []
    metric_headers = [header for _, _, header, *_ in METRICS]
    minutes = sum(r.wall_seconds for r in records if math.isfinite(r.wall_seconds)) / 60.0
    datasets = ", ".join(sorted({c.dataset for c in configs}))
    lines = [
        f"# Sweep results: {root}",
        "",
        f"{len(records)} finished runs in {len(configs)} configurations on {datasets} "
        f"({minutes:.0f} min of run time in all). Each cell is the mean ± sample standard deviation over the n runs "
        "(seeds) of a configuration; accuracies and ECE (15 equal-width bins) in %, NLL in nats, s/epoch: seconds "
        "of training per epoch (evaluation excluded). "
        f"Regenerate with `{regenerate}`.",
        "",
        "## Summary",
        "",
        "One row per method and backbone. Where a method was run with several settings, the setting is **chosen by "
        f"{criterion.words}** over the seeds every setting was run with (ties: {tie_words}) and its "
        "test numbers, over all its seeds, are reported; the test split plays no part in the choice.",
        "",
        _md_row([*lead, "backbone", "method", "chosen setting", "of", "n", *metric_headers]),
        _md_row(["---"] * (len(lead) + 5 + len(METRICS))),
    ]
    for config in configs:
        if config.selected:
            lines.append(
                _md_row(
                    [*([config.dataset] if several else []), config.backbone, config.method, config.setting,
                     str(config.n_settings), str(config.n), *_md_stats(config)]
                )
            )  # fmt: skip
    lines += _paired_lines(paired_differences(configs), several)
    lines += _pooled_lines(pooled_rows(configs), several)
    lines += _backbone_recipe_lines(configs, several)
    lines += _across_lines(across_backbones(configs), several)
    lines += [
        "",
        "## All configurations",
        "",
        "✓ marks the setting chosen for its method and backbone.",
        "",
        _md_row([*lead, "backbone", "method", "setting", "chosen", "n", *metric_headers]),
        _md_row(["---"] * (len(lead) + 5 + len(METRICS))),
    ]
    for config in configs:
        lines.append(
            _md_row(
                [*([config.dataset] if several else []), config.backbone, config.method, config.setting,
                 "✓" if config.selected else "", str(config.n), *_md_stats(config)]
            )
        )  # fmt: skip
    lines.append("")
    if transfers:
        lines += _transfer_lines(transfers, several)
    lines += ["## Plots", ""]
    if plots_note:
        lines.append(plots_note)
    elif not plots:
        lines.append("No plots: no (α, τ) grid and no saved test predictions.")
    for plot in plots:
        lines += [f"![{plot.stem}]({plot.name})", ""]
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return path


def _table_section(title: str, intro: str, headers: Sequence[str]) -> list[str]:
    """The opening lines of a results.md section: its title, a paragraph, a table's header and rule."""
    return ["", f"## {title}", "", intro, "", _md_row(headers), _md_row(["---"] * len(headers))]


def _paired_lines(rows: Sequence[PairedRow], several: bool) -> list[str]:
    """The "against ce" table (:mod:`lsr_hf.sweep.paired`); none when no backbone has ce and another method."""
    if not rows:
        return []
    lines = _table_section(
        "Against ce, paired by seed",
        "Each method's chosen setting minus ce on the same backbone, run by run with the same seed (same initial "
        "weights, same batches), then mean ± sample std of these differences over the seeds both have: a gap "
        "several std from 0 is larger than the seed's effect. Accuracy and ECE in points, NLL in nats.",
        [*(["dataset"] if several else []), "backbone", "method", "chosen setting", "seeds", "Δ test acc",
         "Δ test ECE", "Δ test NLL"],
    )  # fmt: skip
    for row in rows:
        cells = [
            _format_stat(*row.differences[metric], scale, decimals, signed=True)
            for metric, _, _, scale, decimals in METRICS
            if metric in PAIRED_METRICS
        ]
        seeds = " ".join(str(s) for s in row.seeds)
        lines.append(_md_row([*([row.dataset] if several else []), row.backbone, row.method, row.setting, seeds, *cells]))
    return lines


def _pooled_lines(rows: Sequence[PooledRow], several: bool) -> list[str]:
    if not rows:
        return []
    votes = [vote for vote in VOTES if any((vote, "accuracy") in row.stats for row in rows)]
    names = {"logits": "mean of logits", "probabilities": "mean of probabilities", "segments": "per segment"}
    headers = [*(["dataset"] if several else []), "backbone", "method", "setting", "chosen", "seeds", "examples"]
    for vote in votes:
        headers += [f"acc (%), {names[vote]}", f"ECE (%), {names[vote]}", f"NLL, {names[vote]}"]
    lines = _table_section(
        "Pooled over folds (out-of-fold test predictions)",
        "k-fold runs: per seed, the test predictions of the k folds (which together hold every example once) are "
        "pooled and scored as one set, then mean ± sample std over the seeds whose folds are all finished. "
        + (
            "Audio: the clip's vote from its segments' logits, as the mean of the logits (the model's default) or of "
            "the probabilities, and every segment scored on its own (per segment). "
            if len(votes) > 1
            else ""
        )
        + "Accuracy and ECE (15 bins) in %, NLL in nats.",
        headers,
    )
    for row in rows:
        config = row.config
        cells = [*([config.dataset] if several else []), config.backbone, config.method, config.setting,
                 "✓" if config.selected else "", " ".join(str(s) for s in row.seeds), str(row.num_examples)]  # fmt: skip
        for vote in votes:
            for metric, scale, decimals in (("accuracy", 100.0, 2), ("ece", 100.0, 2), ("nll", 1.0, 4)):
                cells.append(_format_stat(*row.stats.get((vote, metric), (math.nan, math.nan)), scale, decimals))
        lines.append(_md_row(cells))
    return lines


def _across_lines(rows: Sequence[AcrossRow], several: bool) -> list[str]:
    """The "across backbones" table (:mod:`lsr_hf.sweep.across`); none with fewer than two backbones with ce."""
    if not rows:
        return []
    lines = _table_section(
        "Across backbones: one setting for all",
        "Every setting run on all backbones that have ce, scored on validation by its gain over ce on each backbone "
        "(points of accuracy, over the seeds every setting of the method and ce share there): the mean over "
        "backbones and the worst one. ✓ marks each method's highest mean gain (ties: lower NLL), the setting a "
        "default for unseen models would take. Mean validation ECE (%) and NLL beside it; the test gain is for "
        "reference only.",
        [*(["dataset"] if several else []), "method", "setting", "backbones", "chosen", "mean Δ val acc",
         "worst Δ val acc", "mean val ECE", "mean val NLL", "mean Δ test acc"],
    )  # fmt: skip
    for row in rows:
        lines.append(
            _md_row(
                [*([row.dataset] if several else []), row.method, row.setting, str(len(row.backbones)),
                 "✓" if row.chosen else "", _format_stat(row.mean_gain, math.nan, 100.0, 2, signed=True),
                 _format_stat(row.worst_gain, math.nan, 100.0, 2, signed=True),
                 _format_stat(row.mean_ece, math.nan, 100.0, 2), _format_stat(row.mean_nll, math.nan, 1.0, 4),
                 _format_stat(row.mean_test_gain, math.nan, 100.0, 2, signed=True)]
            )
        )  # fmt: skip
    return lines


def _backbone_recipe_lines(configs: Sequence[ConfigResult], several: bool) -> list[str]:
    """A table of the recipe keys set per backbone (``ConfigResult.backbone_recipe``); none when there are none."""
    rows: dict[tuple[str, str], str] = {}
    for config in configs:
        if config.backbone_recipe:
            rows.setdefault(
                (config.dataset, config.backbone),
                ", ".join(f"{k}={compact_value(v)}" for k, v in config.backbone_recipe.items()),
            )
    if not rows:
        return []
    lines = _table_section(
        "Backbone recipes",
        "Recipe keys with one value on each backbone but not the same on all: each backbone's own training recipe, "
        "used by every method and setting on it, so they are not part of the compared settings.",
        [*(["dataset"] if several else []), "backbone", "recipe keys"],
    )
    for (dataset, backbone), keys in rows.items():
        lines.append(_md_row([*([dataset] if several else []), backbone, keys]))
    return lines


def _md_stats(config: ConfigResult) -> list[str]:
    return [_format_stat(*config.stats[metric], scale, decimals) for metric, _, _, scale, decimals in METRICS]


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"
