"""The errors that stop a training job on purpose, each with a message written for the user and an exit status.

``scripts/train.py`` prints ``error: <message>`` (no traceback) and exits with ``exit_code``:

* 2: bad input, found before training starts (a recipe, the data, the output folder) — what argparse uses for a
  bad command line, and what ``RecipeError`` already exits with;
* 3: the training itself diverged (a non-finite or exploding loss);
* 4: an output could not be written during the run (a full disk while saving a checkpoint or the model);
* 130: the run was interrupted (Ctrl-C, SIGINT): a checkpoint was saved and ``--resume`` continues it.

The table of cases and what each gets is in ``docs/RELIABILITY.md``.
"""

from __future__ import annotations

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_WRITE_FAILED = 4
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a process stopped by Ctrl-C


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


class OutputWriteError(JobError, OSError):
    """A checkpoint or the final model could not be written (a full disk, a vanished folder); what was saved before
    is kept, and ``--resume`` continues from the last complete checkpoint."""

    exit_code = EXIT_WRITE_FAILED


class TrainingInterrupted(KeyboardInterrupt):
    """The run was interrupted (Ctrl-C): ``str(err)`` names the checkpoint it saved and how to resume.

    A ``KeyboardInterrupt``, not an ``Exception``, so that whatever stops on Ctrl-C (a sweep over many runs) still
    stops; ``scripts/train.py`` prints it as one line and exits with ``exit_code`` (130)."""

    exit_code: int = EXIT_INTERRUPTED

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "interrupted"
