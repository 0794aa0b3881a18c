"""Whole-file sha256, remembered per file identity so a big file is hashed once.

A cache entry's weights are gigabytes: hashing them on every load would cost seconds each
time (1.1 s of every `specs run` start-up for the preset's two GGUFs), while checking sizes
only lets a same-size corruption through. So a file's full hash is checked once, and again
only when its identity changes: size, mtime, ctime, inode, device. Any write, rename or
chmod changes the ctime, which (unlike the mtime) a user cannot set back, so a same-size
corruption whose mtime was restored is still hashed again. Within a process the match is
remembered in memory; with remember=True also in a `.verified.json` beside the file (a
cache entry's own folder), so later processes skip the hash too, as git's index skips
unchanged files. A folder that cannot be written just hashes every time.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

_CHUNK = 8 << 20
RECORD = ".verified.json"
"""Per folder: file name -> the sha256 it matched and the file's identity then."""
Identity = tuple[int, int, int, int, int]
_verified: dict[str, Identity] = {}
"""Files whose full sha256 matched in this process: path -> identity when it did."""
_verified_lock = threading.Lock()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def identity(file: Path) -> Identity:
    st = file.stat()
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev


def hash_matches(file: Path, sha256: object, *, remember: bool = False) -> bool:
    """sha256_file(file) == sha256, hashed once per identity of the file: per process, or
    across processes with remember=True (see the module docstring)."""
    key, now = str(file), identity(file)
    with _verified_lock:
        if _verified.get(key) == now:
            return True
    if not (remember and _recorded(file) == [sha256, list(now)]):
        if sha256_file(file) != sha256:
            return False
        if remember:
            _record(file, sha256, now)
    with _verified_lock:
        _verified[key] = now
    return True


def _read_record(folder: Path) -> dict:
    try:
        record = json.loads((folder / RECORD).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _recorded(file: Path) -> object:
    return _read_record(file.parent).get(file.name)


def _record(file: Path, sha256: object, now: Identity) -> None:
    """Adds one match to the folder's record (written whole, then renamed into place, so
    a reader never sees half of it; two writers at once may drop one entry, which only
    costs a hash later)."""
    record = _read_record(file.parent)
    record[file.name] = [sha256, list(now)]
    staging = file.parent / f"{RECORD}.{os.getpid()}.{threading.get_ident()}"
    try:
        staging.write_text(json.dumps(record))
        os.replace(staging, file.parent / RECORD)
    except OSError:  # a read-only cache still loads; it hashes again next time
        staging.unlink(missing_ok=True)


def forget() -> None:
    """Hash every file again at its next check, unless a record remembers it (as a new
    process would)."""
    with _verified_lock:
        _verified.clear()
