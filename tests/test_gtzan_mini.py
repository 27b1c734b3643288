"""Real music: recipes/gtzan_mini_ostc.yaml on the 100 real GTZAN clips of ../shared/data/gtzan-mini (k-fold over
clips, the recipe run as written). Skipped where ../shared/data is absent (a user's clone has none)."""

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from lsr_hf.data.load import LABEL_COLUMN, load_raw_splits
from lsr_hf.recipe import load_recipe

REPO = Path(__file__).resolve().parents[1]
GTZAN_MINI = REPO.parent / "shared" / "data" / "gtzan-mini"
RECIPE = "recipes/gtzan_mini_ostc.yaml"
pytestmark = pytest.mark.skipif(
    not GTZAN_MINI.is_dir(), reason=f"gtzan-mini not found at {GTZAN_MINI} (../shared/data is only on the dev machines)"
)


def clip_files(ds) -> list[str]:
    return [cell["path"] for cell in ds.with_format("arrow")[:]["audio"].to_pylist()]


def test_the_folds_split_the_real_clips_without_overlap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # the recipe's data.path is relative to the project root
    tested = []
    for fold in range(5):
        cfg = load_recipe(RECIPE, [f"data.fold={fold}"]).data
        raw = load_raw_splits(cfg)
        files = {split: clip_files(ds) for split, ds in raw.items()}
        assert {split: len(f) for split, f in files.items()} == {"train": 70, "validation": 10, "test": 20}
        assert len(set().union(*files.values())) == 100  # no clip in two splits
        assert Counter(raw["test"][LABEL_COLUMN]) == {genre: 2 for genre in range(10)}
        assert all(Path(f).parent.name == Path(f).name.split(".")[0] for f in files["test"])  # genre folder = label
        tested += files["test"]
    assert len(set(tested)) == 100  # every real clip is tested once over the 5 folds


def test_the_recipe_runs_as_written_and_keeps_every_segments_logits(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "scripts/train.py", "--recipe", RECIPE, "--set", f"training.output_dir={out}",
         "--set", "training.max_steps=2", "--set", "training.save_strategy='no'",
         "--set", "training.eval_strategy='no'", "--set", "training.disable_tqdm=true"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["dataset"]["sizes"] == {"train": 700, "validation": 10, "test": 20}  # 70 clips × 10 segments of 3 s
    saved = np.load(out / "test_predictions.npz", allow_pickle=False)
    assert saved["segment_logits"].shape == (20, 10, 10)
    np.testing.assert_allclose(saved["segment_logits"].mean(axis=1), saved["logits"], rtol=1e-4, atol=1e-4)
