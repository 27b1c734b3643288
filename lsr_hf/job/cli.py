"""The ``lsr-hf`` command (``[project.scripts]`` in pyproject.toml); ``lsr-hf train`` is ``scripts/train.py``,
``lsr-hf push`` is ``scripts/push.py``:

    lsr-hf train --recipe recipes/gtzan_ostc.yaml [--set loss.alpha=0.3 ...] [--resume] [--overwrite]
    python scripts/train.py --recipe recipes/gtzan_ostc.yaml                        # the same
    accelerate launch -q scripts/train.py --recipe recipes/gtzan_ostc.yaml          # under a launcher
    accelerate launch -q -m lsr_hf.job.cli train --recipe recipes/gtzan_ostc.yaml       # the same
    lsr-hf push outputs/gtzan_lsr_os_tc --repo-id you/gtzan-ostc [--private]       # a finished run to the Hub
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

TRAIN_DOC = """Train a model from a recipe:

    lsr-hf train --recipe recipes/gtzan_ostc.yaml [--set loss.alpha=0.3 ...] [--resume] [--overwrite]
    accelerate launch -q scripts/train.py --recipe recipes/gtzan_ostc.yaml [...]   (the same, under a launcher)

The job itself is ``lsr_hf.job.train.run``; this command only parses the command line. A malformed recipe, unusable data
(a dataset that cannot be fetched: Hub out of reach, wrong id, private; a data.path with nothing usable) or an output
folder that holds another run exits with status 2 and a message (``error: ...``) before training, and so does a
``hub.push`` that cannot happen (offline mode, no token, no write access); a diverged training loss exits with
status 3 (docs/RELIABILITY.md); a push that fails after training exits with status 4 and prints the ``lsr-hf push``
command that retries it (docs/HUB.md). --debug (or LSR_HF_DEBUG=1) shows the traceback instead.
Under ``accelerate launch``, pass ``-q`` (``--quiet``) so that accelerate ends a failed run with status 1 instead of
printing its own traceback.
"""


def train_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The command line of ``lsr-hf train`` / ``scripts/train.py``: the recipe arguments and ``--debug``."""
    from lsr_hf.recipe import add_recipe_arguments

    parser = argparse.ArgumentParser(
        prog=prog, description=TRAIN_DOC, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_recipe_arguments(parser)
    parser.add_argument(
        "--debug", action="store_true", help="Show the traceback of the errors that stop a job (or LSR_HF_DEBUG=1)."
    )
    return parser


def train(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Runs one training job from the command line; returns the exit status (0, 2 bad input, 3 diverged)."""
    from lsr_hf.errors import JobError, TrainingInterrupted
    from lsr_hf.recipe import RecipeError, recipe_from_args

    args = train_parser(prog).parse_args(argv)
    try:
        recipe = recipe_from_args(args)
    except (RecipeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    from lsr_hf.job.train import run, summary_line  # heavy imports only after the recipe is known to be valid

    try:
        results = run(recipe, resume=args.resume, overwrite=args.overwrite)
    except JobError as err:
        if args.debug or os.environ.get("LSR_HF_DEBUG", "") not in ("", "0"):
            raise
        print(f"error: {err}\n(--debug or LSR_HF_DEBUG=1 shows the traceback)", file=sys.stderr)
        return err.exit_code
    except TrainingInterrupted as err:  # Ctrl-C: one line naming the checkpoint and the --resume command
        print(str(err), file=sys.stderr)
        return err.exit_code
    print(summary_line(results))
    return 0


def push(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Pushes a finished run to the Hub (``lsr_hf.job.hub.main``); returns the exit status (0, 2 cannot push, 4 the
    upload failed)."""
    from lsr_hf.job.hub import main as push_main

    return push_main(argv, prog=prog)


COMMANDS = {"train": train, "push": push}


def main(argv: Sequence[str] | None = None) -> int:
    """``lsr-hf COMMAND ...``: ``train`` (one job from a recipe), ``push`` (a finished run to the Hub)."""
    parser = argparse.ArgumentParser(
        prog="lsr-hf", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("train", help="Train a model from a recipe (lsr-hf train --help).", add_help=False)
    commands.add_parser("push", help="Push a finished run to the Hub (lsr-hf push --help).", add_help=False)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv[:1])  # the command (or --help); the command's own parser reads the rest
    return COMMANDS[args.command](argv[1:], prog=f"lsr-hf {args.command}")


if __name__ == "__main__":
    sys.exit(main())
