#!/usr/bin/env python
"""Run a sweep of training jobs and report on it:

    python scripts/sweep.py run sweeps/demo.yaml [--dry-run] [--output-dir DIR]
    python scripts/sweep.py run sweeps/demo.yaml --backend ray [--address ADDR] [--gpus-per-run G] [--cpus-per-run C]
    python scripts/sweep.py report outputs/sweeps/demo [--select-by accuracy|nll]
    python scripts/sweep.py repeat sweeps/cifar10_grid.yaml --seeds 1 2 --out sweeps/cifar10_seeds.yaml

``run`` validates every run's recipe first, then trains the runs that have no results.json yet (a finished run is
skipped, an interrupted one resumes or restarts), printing k/N, the run name, its test accuracy and the progress
(done / running / failed / left, elapsed, estimate), and ends by writing the report. By default the runs go one after
the other in this process; ``--backend ray`` makes each run a Ray task holding G GPUs and C CPUs, side by side on a
local Ray instance (this machine) or, with ``--address``, on a running Ray cluster (``pip install 'lsr-hf[ray]'``).
A failed run is reported with its error (and, on Ray, its log file) while the others go on. ``report`` regenerates
DIR/results.md, DIR/results.csv and the plots from the finished runs under DIR; ``--select-by nll`` chooses each
method's setting by lowest mean validation NLL instead of highest validation accuracy (both: test plays no part). ``repeat`` writes stage 2 of a
two-stage study: a sweep file that runs, with the given seeds and into the same folder, the setting the report
chose on validation for each backbone × method among the sweep's finished runs (``lsr_hf/sweep/repeat.py``). The
sweep-file format is in ``lsr_hf/sweep/__init__.py``.

Exit status: 0 when every run finished, 1 when some run failed (the others are kept: run the same command again to
retry it), 2 for an invalid sweep file, recipe or option, before anything is trained.
"""

import argparse
import importlib.util
import math
import shlex
import sys
from pathlib import Path

from lsr_hf.sweep import RayOptions, SweepError, SweepFailure, load_sweep, run_name, run_sweep, write_report
from lsr_hf.sweep.repeat import repeat_chosen, repeat_sweep_text
from lsr_hf.sweep.common import DEFAULT_SELECTION, SELECTION_CRITERIA
from lsr_hf.sweep.ray_backend import MISSING_RAY


def _number(minimum: float, inclusive: bool):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < minimum or (value == minimum and not inclusive):
            raise argparse.ArgumentTypeError(f"expected a number {'>=' if inclusive else '>'} {minimum:g}, got {text!r}")
        return value

    return parse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="Run (or continue) a sweep, then write its report.")
    run_parser.add_argument("sweep", metavar="SWEEP.yaml", help="Sweep file (see sweeps/demo.yaml).")
    run_parser.add_argument(
        "--dry-run", action="store_true", help="Validate every run and print the plan; train nothing."
    )
    run_parser.add_argument("--output-dir", default=None, metavar="DIR", help="Overrides the sweep's output_dir.")
    run_parser.add_argument(
        "--backend",
        choices=("process", "ray"),
        default="process",
        help="process (default): one run after the other here; ray: each run a Ray task, side by side.",
    )
    ray_group = run_parser.add_argument_group("Ray backend (--backend ray)")
    ray_group.add_argument(
        "--address", default=None, help="A running Ray cluster ('auto', 'ray://head:10001'); default: start one here."
    )
    ray_group.add_argument(
        "--gpus-per-run", type=_number(minimum=0.0, inclusive=True), default=None, metavar="G",
        help="GPUs each run holds (default: 1 when the cluster has GPUs, else 0).",
    )
    ray_group.add_argument(
        "--cpus-per-run", type=_number(minimum=0.0, inclusive=False), default=1.0, metavar="C",
        help="CPUs each run holds (default 1; count the recipe's dataloader workers in).",
    )
    report_parser = commands.add_parser("report", help="Write results.md, results.csv and plots for DIR.")
    report_parser.add_argument("directory", metavar="DIR", help="Folder holding the runs (searched recursively).")
    repeat_parser = commands.add_parser(
        "repeat", help="Write a sweep file repeating each backbone × method's chosen setting with more seeds."
    )
    repeat_parser.add_argument("sweep", metavar="SWEEP.yaml", help="The stage-1 sweep file (its runs, finished).")
    repeat_parser.add_argument("--seeds", type=int, nargs="+", required=True, help="The new seeds, e.g. 1 2.")
    repeat_parser.add_argument("--out", required=True, metavar="FILE", help="Where to write the new sweep file.")
    repeat_parser.add_argument("--output-dir", default=None, metavar="DIR", help="Overrides the sweep's output_dir.")
    for sub_parser in (report_parser, repeat_parser):
        sub_parser.add_argument(
            "--select-by", choices=tuple(SELECTION_CRITERIA), default=DEFAULT_SELECTION,
            help="How a method's setting is chosen on the validation split: highest mean accuracy (default; ties: "
            "lower NLL) or lowest mean NLL (ties: higher accuracy).",
        )  # fmt: skip
    args = parser.parse_args(argv)

    try:
        if args.command == "run":
            ray_options = None
            if args.backend == "ray":
                if importlib.util.find_spec("ray") is None:
                    parser.error(MISSING_RAY)
                ray_options = RayOptions(args.address, args.gpus_per_run, args.cpus_per_run)
            elif args.address is not None or args.gpus_per_run is not None or args.cpus_per_run != 1.0:
                parser.error("--address, --gpus-per-run and --cpus-per-run need --backend ray")
            sweep = load_sweep(args.sweep)
            run_sweep(sweep, output_dir=args.output_dir, dry_run=args.dry_run, backend=args.backend,
                      ray_options=ray_options)
        elif args.command == "repeat":
            sweep = load_sweep(args.sweep)
            plan = repeat_chosen(sweep, args.output_dir, args.select_by)
            command = ["python", "scripts/sweep.py", "repeat", args.sweep, "--seeds", *map(str, args.seeds)]
            command += ["--out", args.out] + (["--output-dir", args.output_dir] if args.output_dir else [])
            command += ["--select-by", args.select_by] if args.select_by != DEFAULT_SELECTION else []
            text = repeat_sweep_text(sweep, plan, args.seeds, args.out, shlex.join(command))
            Path(args.out).write_text(text, encoding="utf-8")
            for setting in plan.chosen:
                print(f"chosen: {run_name(setting.overrides, args.seeds[0]).rsplit(',seed=', 1)[0]}")
            if plan.unfinished:
                print(
                    f"warning: {len(plan.unfinished)} run(s) of {args.sweep} have not finished (e.g. "
                    f"{plan.unfinished[0]}); their settings were not candidates", file=sys.stderr,
                )  # fmt: skip
            print(f"wrote {args.out}: {len(plan.chosen)} setting(s) × {len(args.seeds)} seed(s)")
        else:
            for path in write_report(args.directory, args.select_by):
                print(f"wrote {path}")
    except SweepError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except SweepFailure as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
