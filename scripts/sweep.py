#!/usr/bin/env python
"""Run a sweep of training jobs and report on it:

    python scripts/sweep.py run sweeps/demo.yaml [--dry-run] [--output-dir DIR]
    python scripts/sweep.py report outputs/sweeps/demo

``run`` validates every run's recipe first, then trains the runs that have no results.json yet, one after the
other in this process (a finished run is skipped, an interrupted one resumes or restarts), printing k/N, the run
name and its test accuracy, and ends by writing the report. ``report`` regenerates DIR/results.md, DIR/results.csv
and the plots from the finished runs under DIR. The sweep-file format is in ``lsr_hf/sweep/__init__.py``. An invalid sweep
file or recipe exits with status 2 before anything is trained.
"""

import argparse
import sys

from lsr_hf.sweep import SweepError, load_sweep, run_sweep, write_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="Run (or continue) a sweep, then write its report.")
    run_parser.add_argument("sweep", metavar="SWEEP.yaml", help="Sweep file (see sweeps/demo.yaml).")
    run_parser.add_argument(
        "--dry-run", action="store_true", help="Validate every run and print the plan; train nothing."
    )
    run_parser.add_argument("--output-dir", default=None, metavar="DIR", help="Overrides the sweep's output_dir.")
    report_parser = commands.add_parser("report", help="Write results.md, results.csv and plots for DIR.")
    report_parser.add_argument("directory", metavar="DIR", help="Folder holding the runs (searched recursively).")
    args = parser.parse_args(argv)

    try:
        if args.command == "run":
            run_sweep(load_sweep(args.sweep), output_dir=args.output_dir, dry_run=args.dry_run)
        else:
            for path in write_report(args.directory):
                print(f"wrote {path}")
    except SweepError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
