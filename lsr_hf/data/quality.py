"""Skipped files: how an undecodable image or audio file is named, and when a split has lost too many.

A corrupt sample is skipped, logged with its split and row (and path, when it has one) and counted in
``results.json`` (``dataset.num_skipped``, per split). A split that loses more than ``data.max_skipped_fraction``
of its files (1% by default), or all of them, stops the job with :class:`~lsr_hf.errors.DataError` instead of
training on what is left: a dataset that broken is better fixed than trained on.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

from lsr_hf.errors import DataError

logger = logging.getLogger(__name__)

DEFAULT_MAX_SKIPPED_FRACTION = 0.01
SHOWN_SKIPS = 5  # how many skipped files an error message names
_OBJECT_REPR = re.compile(r" ?<[^<>]* object at 0x[0-9a-fA-F]+>")


def skip_note(index: int, path: str | None, err: BaseException | str) -> str:
    """One skipped file, as logged and stored: ``row 17 (img/17.png): cannot identify image file``; ``index`` is
    the row in the split as it was decoded (after any carving of validation/test splits and subsampling)."""
    reason = err if isinstance(err, str) else (getattr(err, "error_string", None) or str(err) or type(err).__name__)
    reason = _OBJECT_REPR.sub("", " ".join(str(reason).split()))  # PIL names the in-memory file: <_io.BytesIO ...>
    where = f"row {index}" + (f" ({path})" if path else "")
    return f"{where}: {reason.rstrip('.')}"


def check_skipped(
    split: str, what: str, skipped: Sequence[str], total: int, max_fraction: float = DEFAULT_MAX_SKIPPED_FRACTION
) -> None:
    """Logs the skipped files of one split; raises ``DataError`` when more than ``max_fraction`` of its ``total``
    rows (or all of them) were skipped. ``what`` names the files in messages (``images``, ``audio files``)."""
    if not skipped:
        return
    n = len(skipped)
    share = f"{n} of {total} {what} ({100.0 * n / max(total, 1):.3g}%)"
    if n >= total:
        raise DataError(
            f"the {split} split: none of its {total} {what} could be used ({'; '.join(skipped[:SHOWN_SKIPS])}"
            f"{'; ...' if n > SHOWN_SKIPS else ''}); check data.path / data.input_column"
        )
    if n > max_fraction * total:
        raise DataError(
            f"the {split} split: {share} could not be used, more than data.max_skipped_fraction={max_fraction:g} "
            f"allows: {'; '.join(skipped[:SHOWN_SKIPS])}{'; ...' if n > SHOWN_SKIPS else ''}. Fix or remove those "
            f"files, or raise data.max_skipped_fraction to train on the rest"
        )
    logger.warning("the %s split: skipped %s: %s", split, share, "; ".join(skipped))


def check_parquet_files(path: str | Path) -> None:
    """Raises ``DataError`` for a parquet file under ``path`` (a file or a folder) that has no rows: ``datasets``
    cannot read one (it fails with ``BatchSize must be greater than 0``), and an empty split cannot be trained on."""
    path = Path(path).expanduser()
    files = [path] if path.is_file() else sorted(path.rglob("*.parquet")) if path.is_dir() else []
    for file in files:
        if file.suffix.lower() != ".parquet":
            continue
        import pyarrow.parquet as pq

        try:
            rows = pq.ParquetFile(file).metadata.num_rows
        except Exception as err:  # pyarrow raises ArrowInvalid / OSError for a file that is not parquet
            raise DataError(f"{file} is not a readable parquet file: {err}") from err
        if rows == 0:
            raise DataError(f"{file} has no rows: an empty split cannot be trained on; remove the file or fill it")
