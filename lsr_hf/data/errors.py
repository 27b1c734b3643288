"""``DataSourceError``: the data could not be reached or holds nothing usable (a user problem, not a bug).

``scripts/train.py`` prints it as a few lines (no traceback) and exits with status 2, before any output folder is
made. It is a ``DataError`` (so a ``JobError`` with exit status 2, and a ``ValueError``), so callers that catch
bad input keep catching it.
"""

from __future__ import annotations

from lsr_hf.errors import DataError

LOCAL_LAYOUTS = (
    "a parquet file or a folder of parquet files (train-*.parquet / validation-* / test-*, or one folder per split); "
    "an image folder [<split>/]<class>/<image>; an audio folder [<split>/]<class>/<clip>.wav"
)


class DataSourceError(DataError):
    """What could not be used, the underlying reason in one line, and what to do about it.

    ``str(error)`` is the three parts on three lines; the first line alone reads as an ordinary error message.
    """

    def __init__(self, what: str, reason: str, remedy: str) -> None:
        self.what = what
        self.reason = " ".join(str(reason).split())  # one line, whatever the library wrote
        self.remedy = remedy
        super().__init__(f"{what}\n  reason: {self.reason}\n  what to do: {remedy}")


def hub_unreachable(dataset_id: str, err: BaseException) -> DataSourceError:
    """The error for a Hub dataset ``load_dataset`` could not fetch (offline, no network, wrong id, private)."""
    reason = f"{type(err).__name__}: {err}"
    return DataSourceError(
        f"could not load dataset {dataset_id!r} from the HuggingFace Hub",
        reason,
        f"check the id and your network (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE must be unset to download); "
        f"for a private or gated dataset run `hf auth login` (or set HF_TOKEN); or train on a local copy with "
        f"`--set data.path=/local/copy`, where the copy is {LOCAL_LAYOUTS}",
    )


def nothing_usable(path: str, reason: str) -> DataSourceError:
    """The error for a ``data.path`` that holds no data lsr-hf can read."""
    return DataSourceError(
        f"path {path!r} holds no usable dataset",
        reason,
        f"point data.path at {LOCAL_LAYOUTS}",
    )
