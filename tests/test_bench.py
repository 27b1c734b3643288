"""scripts/bench.py runs (a smoke test of the benchmark script; its figures are not checked here)."""

import math
import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "scripts" / "bench.py"


def bench(*args):
    proc = subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_loss_benchmark_prints_a_row_per_class_count():
    out = bench("loss", "--device", "cpu", "--batch", "16", "--classes", "10", "20", "--min-run-time", "0.01")
    rows = [line for line in out.splitlines() if re.match(r"\| (10|20) \|", line)]
    assert len(rows) == 2
    # K, CE time, 5 methods, lsr_os_tc torch / + label check, naive KL, Tf-KD loop
    assert all(len(row.split("|")) == 13 for row in rows)


def test_train_benchmark_smoke():
    out = bench("train", "--smoke")
    image = next(line for line in out.splitlines() if line.startswith("| 8 |"))  # smoke: image batch 8
    audio = next(line for line in out.splitlines() if line.startswith("| 4 |"))  # smoke: audio batch 4
    for row, columns in ((image, 7), (audio, 7)):
        cells = [c.strip() for c in row.strip("|").split("|")]
        values = [float(c.replace(",", "")) for c in cells[1:]]  # numbers, rounded as printed: a slow (loaded)
        assert len(cells) == columns and all(math.isfinite(v) and v >= 0 for v in values)  # machine may print 0


def test_methods_benchmark_smoke():
    out = bench("methods", "--smoke")
    row = next(line for line in out.splitlines() if line.startswith("| resnet10t |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert len(cells) == 1 + 5 + 4 + 5 and all(float(c.replace(",", "")) > 0 for c in cells[1:])
