"""Atomic file writes: readers see the old file or the complete new one, never a partial file."""

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a hidden temporary path beside ``final``; on success fsync and rename it onto ``final``.

    On any exception the temporary file is removed and ``final`` is left as it was. Temporaries start
    with '.' so frame discovery and listings never pick them up.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
