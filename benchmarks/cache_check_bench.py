"""What the model cache's full integrity check costs: the first ensure_cached() of a process
hashes every file of the entry (sha256); later ones in the same process only stat them.

Usage (after the entry is built, on a quiet machine):
    HF_HUB_OFFLINE=1 python benchmarks/cache_check_bench.py qwen2.5-coder-1.5b
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from artefact import write_artefact  # noqa: E402

from specs_engine import file_hashes, sources  # noqa: E402


def timed_check(entry: sources.RegistryModel) -> float:
    started = time.perf_counter()
    sources.ensure_cached(entry)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(sources.REGISTRY))
    args = parser.parse_args()
    entry = sources.REGISTRY[args.name]
    directory = sources.cache_root() / "models" / entry.name
    if not sources.is_complete(directory, entry):
        raise SystemExit(f"{directory} is not built yet: run `specs run` once first")
    size_gb = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file()) / 1e9
    file_hashes.forget()
    first = timed_check(entry)  # as in a new process: every file hashed
    again = timed_check(entry)  # same process, files unchanged: stat only
    print(f"{entry.name}: {size_gb:.2f} GB; first check in a process {first:.2f} s "
          f"({size_gb / first:.2f} GB/s), later checks {again * 1e3:.1f} ms")
    write_artefact("cache_check_bench", {"model": entry.name, "size_gb": size_gb,
                                         "first_check_s": first, "later_check_s": again})


if __name__ == "__main__":
    main()
