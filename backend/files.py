"""Files written whole or not at all: a reader (another process, a restart after a crash) never sees half a file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable


def _read_umask() -> int:
    # os.umask can only be read by setting it; done once at import, before any thread could create files meanwhile.
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def write_atomically(
    path: str | os.PathLike, write: Callable[[IO], Any], *, binary: bool = False, private: bool = False
) -> None:
    """Write through a temporary file in the same directory, flushed to disk, then renamed over `path`.

    The file gets the permissions of an ordinary new file (0666 less the umask), or 0600 when `private`
    (a token)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600 if private else 0o666 & ~_UMASK)  # mkstemp makes every file private
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, payload: Any, indent: int = 1) -> None:
    """JSON (UTF-8, non-ASCII kept as it is), one trailing newline, written atomically."""

    def dump(f: IO) -> None:
        json.dump(payload, f, indent=indent, ensure_ascii=False)
        f.write("\n")

    write_atomically(path, dump)
