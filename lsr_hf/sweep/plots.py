"""The sweep plots: (α, τ) heat-maps of the validation metric and reliability diagrams (matplotlib, Agg backend)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lsr_hf.sweep.common import (
    DEFAULT_SELECTION,
    HEATMAP_METHODS,
    PARAM_SYMBOLS,
    UNSAFE_NAME_CHARS,
    compact_value,
    selection_criterion,
    sort_key,
)
from lsr_hf.sweep.results import ConfigResult, seed_mean, shared_seeds
from lsr_hf.job.outputs import PREDICTIONS_FILE


def _plot_name(kind: str, dataset: str, parts: Sequence[str], several_datasets: bool) -> str:
    pieces = [kind, *([dataset] if several_datasets else []), *parts]
    return "_".join(UNSAFE_NAME_CHARS.sub("-", p) for p in pieces) + ".png"


def _new_figure(width: float, height: float) -> Any:
    """A matplotlib Figure on the Agg canvas (no pyplot, no global backend state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def write_heatmaps(
    root: Path, configs: Sequence[ConfigResult], several_datasets: bool, select_by: str = DEFAULT_SELECTION
) -> list[Path]:
    """One heatmap per method with an (α, τ) grid: the validation metric the selection uses (``select_by``), mean
    over the seeds every setting has, the chosen setting outlined."""
    criterion = selection_criterion(select_by)
    groups: dict[tuple[str, str, str], list[ConfigResult]] = {}
    for config in configs:
        if config.method in HEATMAP_METHODS:
            groups.setdefault((config.dataset, config.backbone, config.method), []).append(config)
    written = []
    for (dataset, backbone, method), group in groups.items():
        points = {(c.params.get("loss.alpha"), c.params.get("loss.temperature")) for c in group}
        if len(points) < 2:
            continue  # no (α, τ) variation: nothing to map
        alphas = sorted({p[0] for p in points}, key=sort_key)
        taus = sorted({p[1] for p in points}, key=sort_key)
        panel_of = {
            id(c): tuple((k, v) for k, v in c.params.items() if k not in ("loss.alpha", "loss.temperature"))
            for c in group
        }
        panels = sorted(set(panel_of.values()), key=lambda panel: tuple(sort_key(v) for _, v in panel))
        grids = {panel: np.full((len(alphas), len(taus)), np.nan) for panel in panels}
        chosen: tuple[Any, int, int] | None = None
        seeds = shared_seeds(group)
        for c in group:
            i, j = alphas.index(c.params.get("loss.alpha")), taus.index(c.params.get("loss.temperature"))
            grids[panel_of[id(c)]][i, j] = seed_mean(c, criterion.metric, seeds) * criterion.scale
            if c.selected:
                chosen = (panel_of[id(c)], i, j)
        values = np.concatenate([g.ravel() for g in grids.values()])
        if not np.isfinite(values).any():
            continue
        vmin, vmax = float(np.nanmin(values)), float(np.nanmax(values))
        if vmin == vmax:
            vmin, vmax = vmin - 0.5, vmax + 0.5
        width = max(4.5, 1.3 + (0.9 * len(taus) + 0.9) * len(panels) + 1.0)
        figure = _new_figure(width, 1.6 + 0.55 * len(alphas) + 0.8)
        axes = figure.subplots(1, len(panels), squeeze=False)[0]
        image = None
        for ax, panel in zip(axes, panels):
            grid = grids[panel]
            image = ax.imshow(grid, cmap="viridis" if criterion.higher_is_better else "viridis_r", vmin=vmin, vmax=vmax, origin="lower", aspect="auto")
            ax.set_xticks(range(len(taus)), [compact_value(t) for t in taus])
            ax.set_yticks(range(len(alphas)), [compact_value(a) for a in alphas])
            ax.set_xlabel("τ (temperature)")
            ax.set_ylabel("α")
            label = ", ".join(f"{PARAM_SYMBOLS.get(k.removeprefix('loss.'), k)}={compact_value(v)}" for k, v in panel)
            if label:
                ax.set_title(label, fontsize=9)
            for i in range(len(alphas)):
                for j in range(len(taus)):
                    if np.isfinite(grid[i, j]):
                        dark = (grid[i, j] - vmin) / (vmax - vmin) < 0.5
                        ax.text(j, i, f"{grid[i, j]:.1f}" if criterion.scale != 1.0 else f"{grid[i, j]:.3f}", ha="center", va="center", fontsize=8,
                                color="white" if dark else "black")  # fmt: skip
            if chosen is not None and chosen[0] == panel:
                from matplotlib.patches import Rectangle

                ax.add_patch(Rectangle((chosen[2] - 0.5, chosen[1] - 0.5), 1, 1, fill=False, edgecolor="red", lw=2))
        figure.suptitle(
            f"{method} on {backbone} ({dataset}): {criterion.words} over seeds\n"
            f"red box: the chosen setting ({'highest' if criterion.higher_is_better else 'lowest'})",
            fontsize=9,
        )
        if image is not None:
            figure.colorbar(image, ax=list(axes), shrink=0.9, label=criterion.label)
        path = root / _plot_name("heatmap", dataset, [method, backbone], several_datasets)
        figure.savefig(path, dpi=110)
        written.append(path)
    return written


def _pooled_predictions(config: ConfigResult) -> tuple[np.ndarray, np.ndarray] | None:
    logits, labels = [], []
    for record in config.runs:
        path = record.folder / PREDICTIONS_FILE
        if not path.is_file():
            continue
        with np.load(path, allow_pickle=False) as saved:
            logits.append(np.asarray(saved["logits"]))
            labels.append(np.asarray(saved["labels"]))
    if not logits:
        return None
    return np.concatenate(logits), np.concatenate(labels)


def write_reliability(root: Path, configs: Sequence[ConfigResult], several_datasets: bool) -> list[Path]:
    from lsr_hf.metrics.functional import ECE_BINS, expected_calibration_error, reliability_bins

    by_backbone: dict[tuple[str, str], list[ConfigResult]] = {}
    for config in configs:
        if config.selected:
            by_backbone.setdefault((config.dataset, config.backbone), []).append(config)
    written = []
    for (dataset, backbone), selected in by_backbone.items():
        curves = []
        for config in selected:  # already in METHOD_ORDER
            pooled = _pooled_predictions(config)
            if pooled is None:
                continue
            confidence, accuracy, count = reliability_bins(*pooled, n_bins=ECE_BINS)
            ece = expected_calibration_error(*pooled, n_bins=ECE_BINS)
            full = count > 0
            curves.append((config, confidence[full], accuracy[full], count[full] / count.sum(), ece))
        if not curves:
            continue
        figure = _new_figure(5.2, 4.6)
        ax = figure.subplots()
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect calibration")
        for config, confidence, accuracy, share, ece in curves:
            setting = f" ({config.setting})" if config.params else ""
            label = textwrap.fill(f"{config.method}{setting}, ECE {ece * 100:.2f}%", width=60, subsequent_indent="  ")
            (line,) = ax.plot(confidence, accuracy, linewidth=1.2, label=label)
            ax.scatter(confidence, accuracy, s=8 + 300 * share, color=line.get_color(), alpha=0.7, zorder=3)
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("confidence (mean max probability in the bin)")
        ax.set_ylabel("accuracy in the bin")
        ax.set_title(
            f"{backbone} ({dataset}): test reliability, seeds pooled\n"
            f"{ECE_BINS} equal-width bins, marker area ∝ share of predictions in the bin",
            fontsize=9,
        )
        ax.legend(fontsize=7, loc="lower right")
        path = root / _plot_name("reliability", dataset, [backbone], several_datasets)
        figure.savefig(path, dpi=110)
        written.append(path)
    return written
