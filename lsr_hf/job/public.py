"""What may leave this machine: text, command lines and JSON-like data with their absolute paths shortened, for
the files a Hub push uploads (:mod:`lsr_hf.job.hub`) and the model card written for it (:mod:`lsr_hf.job.model_card`).

A path under the current folder becomes relative to it, the run folder itself its name, any other absolute path its
last component: no user name, home folder or mount point of the training machine is published.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path, PurePosixPath
from typing import Any

LAUNCHERS = ("python", "python3", "lsr-hf", "accelerate", "torchrun")
# an absolute POSIX path inside text: a "/" not preceded by a name, a dot, a slash, a URL's colon, a tag's "<" or the
# end of an expression (`f"{folder}/model.safetensors"`, `(a + b)/2`, `$HOME/x`)
_ABSOLUTE_PATH = re.compile(r"(?<![\w./:~\\<})\]$%*-])/[^\s'\"`<>|()\[\]{}]*")


def public_text(text: str, run_dir: str | os.PathLike[str] | None = None) -> str:
    """``text`` with every absolute path replaced: relative to the current folder when under it (the folder itself
    is ``.``), else its last component (``run_dir`` itself: its name)."""
    cwd = PurePosixPath(Path.cwd().as_posix())
    run = PurePosixPath(Path(run_dir).resolve().as_posix()) if run_dir is not None else None

    def shorten(match: re.Match[str]) -> str:
        found = match.group(0)
        trail = len(found) - len(found.rstrip(".,:;"))
        path = PurePosixPath(found[: len(found) - trail] or "/")
        end = found[len(found) - trail :]
        if run is not None and path == run:
            return run.name + end
        if cwd != PurePosixPath("/") and (path == cwd or cwd in path.parents):
            return path.relative_to(cwd).as_posix() + end
        return (path.name or ".") + end

    return _ABSOLUTE_PATH.sub(shorten, text)


def public_command(command: str, run_dir: str | os.PathLike[str] | None = None) -> str:
    """A recorded command line without absolute paths: the program as its bare name (``python``, ``lsr-hf``, ...)
    when it is one of those, every path in the arguments through ``public_text``."""
    try:
        words = shlex.split(command)
    except ValueError:
        return public_text(command, run_dir)
    if words and any(Path(words[0]).name.startswith(name) for name in LAUNCHERS):
        words[0] = Path(words[0]).name
    return shlex.join(public_text(word, run_dir) for word in words)


def public_data(value: Any, run_dir: str | os.PathLike[str] | None = None) -> Any:
    """JSON-like ``value`` with ``public_text`` applied to every string (and ``public_command`` to ``command``)."""
    if isinstance(value, dict):
        return {
            key: public_command(item, run_dir) if key == "command" and isinstance(item, str) else
            public_data(item, run_dir)
            for key, item in value.items()
        }  # fmt: skip
    if isinstance(value, list):
        return [public_data(item, run_dir) for item in value]
    if isinstance(value, str):
        return public_text(value, run_dir)
    return value
