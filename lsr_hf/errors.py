"""The errors that stop a training job on purpose, each with a message written for the user and an exit status.

``scripts/train.py`` prints ``error: <message>`` (no traceback) and exits with ``exit_code``:

* 2: bad input, found before training starts (a recipe, the data, the output folder) — what argparse uses for a
  bad command line, and what ``RecipeError`` already exits with;
* 3: the training itself diverged (a non-finite or exploding loss).

The table of cases and what each gets is in ``docs/RELIABILITY.md``.
"""

from __future__ import annotations

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3


class JobError(Exception):
    """A job stopped on purpose; ``str(err)`` says what happened and what to do."""

    exit_code: int = EXIT_BAD_INPUT


class DataError(JobError, ValueError):
    """The data cannot be trained on: an empty split, too many undecodable files, bad labels or columns."""


class OutputDirError(JobError, ValueError):
    """``training.output_dir`` holds another run, is not writable, or has nothing to resume."""


class TrainingDiverged(JobError):
    """The training loss became non-finite or exploded; nothing was saved as a finished model."""

    exit_code = EXIT_DIVERGED
