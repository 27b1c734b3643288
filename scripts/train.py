#!/usr/bin/env python
"""Train a model from a recipe (the same as ``lsr-hf train``; see ``lsr_hf/job/cli.py``):

    accelerate launch -q scripts/train.py --recipe recipes/gtzan_ostc.yaml [--set loss.alpha=0.3 ...] [--resume]
    [--overwrite]

Exit status: 0, 2 for bad input found before training (recipe, data, output folder, a push that cannot happen), 3
for a diverged loss, 4 for an output that could not be written or a failed push, 130 for Ctrl-C
(docs/RELIABILITY.md); ``--debug`` (or ``LSR_HF_DEBUG=1``) shows the traceback instead of the message.
"""

import sys

from lsr_hf.job.cli import train


def main(argv: list[str] | None = None) -> int:
    return train(argv)


if __name__ == "__main__":
    sys.exit(main())
