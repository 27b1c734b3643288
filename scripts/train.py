#!/usr/bin/env python
"""Train a model from a recipe:

    accelerate launch scripts/train.py --recipe recipes/gtzan_ostc.yaml [--set loss.alpha=0.3 ...] [--resume]
    [--overwrite]

The job itself is ``lsr_hf.train.run``; this file only parses the command line. A malformed recipe, unusable data
(a dataset that cannot be fetched: Hub out of reach, wrong id, private; a data.path with nothing usable) or an output
folder that holds another run exits with status 2 and a message (``error: ...``) before training; a diverged
training loss exits with status 3 (docs/RELIABILITY.md). --debug (or LSR_HF_DEBUG=1) shows the traceback instead.
"""

import argparse
import os
import sys

from lsr_hf.errors import JobError
from lsr_hf.recipe import RecipeError, add_recipe_arguments, recipe_from_args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_recipe_arguments(parser)
    parser.add_argument(
        "--debug", action="store_true", help="Show the traceback of the errors that stop a job (or LSR_HF_DEBUG=1)."
    )
    args = parser.parse_args(argv)
    try:
        recipe = recipe_from_args(args)
    except (RecipeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    from lsr_hf.train import run, summary_line  # heavy imports only after the recipe is known to be valid

    try:
        results = run(recipe, resume=args.resume, overwrite=args.overwrite)
    except JobError as err:
        if args.debug or os.environ.get("LSR_HF_DEBUG", "") not in ("", "0"):
            raise
        print(f"error: {err}\n(--debug or LSR_HF_DEBUG=1 shows the traceback)", file=sys.stderr)
        return err.exit_code
    print(summary_line(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
