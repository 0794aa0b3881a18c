"""Whole-file sha256, remembered per file identity so a big file is hashed once.

A cache entry's weights are gigabytes: hashing them on every load would cost seconds each
time, while checking sizes only lets a same-size corruption through. So a file's full hash
is checked once per process, and again only when its identity (size, mtime, inode, device)
changes, which any rewrite of the file does.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

_CHUNK = 8 << 20
_verified: dict[str, tuple[int, int, int, int]] = {}
"""Files whose full sha256 matched in this process: path -> identity when it did."""
_verified_lock = threading.Lock()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def identity(file: Path) -> tuple[int, int, int, int]:
    st = file.stat()
    return st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev


def hash_matches(file: Path, sha256: object) -> bool:
    """sha256_file(file) == sha256, hashed once per process per identity of the file."""
    key, now = str(file), identity(file)
    with _verified_lock:
        if _verified.get(key) == now:
            return True
    if sha256_file(file) != sha256:
        return False
    with _verified_lock:
        _verified[key] = now
    return True


def forget() -> None:
    """Hash every file again at its next check (as a new process would)."""
    with _verified_lock:
        _verified.clear()
