#!/usr/bin/env python
"""Train a model from a recipe:

    accelerate launch scripts/train.py --recipe recipes/gtzan_ostc.yaml [--set loss.alpha=0.3 ...] [--resume]
    [--overwrite]

The job itself is ``lsr_hf.train.run``; this file only parses the command line. A malformed recipe, unusable data
or an output folder that holds another run exits with status 2 and a message (``error: ...``) before training; a
diverged training loss exits with status 3 (docs/RELIABILITY.md).
"""

import argparse
import sys

from lsr_hf.errors import JobError
from lsr_hf.recipe import RecipeError, add_recipe_arguments, recipe_from_args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_recipe_arguments(parser)
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
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    print(summary_line(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
