#!/usr/bin/env python
"""Push a finished run to the Hugging Face Hub (the same as ``lsr-hf push``; see ``lsr_hf/job/hub.py``):

    python scripts/push.py outputs/demo_lsr_os_tc --repo-id you/resnet10t-demo-ostc [--private] [--license mit]

Prints the repository's URL. Exit status: 0, 2 when the push cannot happen (offline mode, no token, no write access,
not a finished run), 4 when the upload failed (the run folder is untouched: run the same command again).
"""

import sys

from lsr_hf.job.hub import main as push


def main(argv: list[str] | None = None) -> int:
    return push(argv)


if __name__ == "__main__":
    sys.exit(main())
