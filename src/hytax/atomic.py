"""Outputs that appear whole or not at all.

A step killed or failing half-way (bad record 9 million reads in, out of memory, Ctrl-C) must
not leave a truncated table that a later step, a `-resume`, or a person takes for a result. So a
writer writes a temporary file beside the target and renames it onto the target only when it has
finished: the rename is atomic within a folder, and the temporary keeps the target's suffixes so
code that picks gzip by the name ending (`.gz`) still does.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

PARTIAL = ".partial"


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`, on any exception
    (KeyboardInterrupt included) it is deleted and `path` is left as it was."""
    path = Path(path)
    temp = path.with_name(f"{PARTIAL}.{os.getpid()}.{path.name}")
    try:
        yield temp
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    os.replace(temp, path)
