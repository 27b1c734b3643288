#!/usr/bin/env python
"""Train a model from a recipe:

    accelerate launch scripts/train.py --recipe recipes/gtzan_ostc.yaml [--set loss.alpha=0.3 ...] [--resume]

The job itself is ``lsr_hf.train.run``; this file only parses the command line. A malformed recipe exits with
status 2 and a message naming the file and the key, before any data is loaded or any output is written. A dataset
that cannot be fetched (Hub out of reach, wrong id, private) or a data.path with nothing usable also exits with
status 2 and a few lines saying what to do, before any output folder is made; --debug (or LSR_HF_DEBUG=1) shows
the traceback instead.
"""

import argparse
import os
import sys

from lsr_hf.recipe import RecipeError, add_recipe_arguments, recipe_from_args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_recipe_arguments(parser)
    parser.add_argument(
        "--debug", action="store_true", help="Show the full traceback of data errors (or set LSR_HF_DEBUG=1)."
    )
    args = parser.parse_args(argv)
    try:
        recipe = recipe_from_args(args)
    except (RecipeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    from lsr_hf.data.errors import DataSourceError  # heavy imports only after the recipe is known to be valid
    from lsr_hf.train import run, summary_line

    try:
        results = run(recipe, resume=args.resume)
    except DataSourceError as err:
        if args.debug or os.environ.get("LSR_HF_DEBUG", "") not in ("", "0"):
            raise
        print(f"error: {err}\n(--debug or LSR_HF_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 2
    print(summary_line(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
