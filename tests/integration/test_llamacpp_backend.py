"""backend="llama.cpp" on GGUF copies of the tiny Qwen2 models, checked against the
transformers backend on the very same f32 weights.

Measured tolerance (these tiny models): with kv_type="f32" (f32 KV cells, plain
attention) per-token log-probs agree with transformers float32 within 2e-6; with
llama.cpp's default f16 KV cells within about 7e-3. The tests use f32 to check the
runtime exactly (positions, shared cells, batching) and f16 once to pin the default's gap.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import sys
import time

import numpy as np
import pytest

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed: pip install 'specs-tts[llama-cpp]'")

from specs_engine import Budget, ConfigError, SpecsConfig, SpecsEngine  # noqa: E402
from specs_engine.backends import choose_backend, load_language_model  # noqa: E402
from specs_engine.backends.hf.lm import TransformersLM  # noqa: E402
from specs_engine.backends.hf.value_head import ValueHeadPRM  # noqa: E402
from specs_engine.errors import SpecsError  # noqa: E402
from specs_engine.models import ProposalParams  # noqa: E402
from specs_engine.sources import ChecksumError  # noqa: E402

EXACT = 1e-4
"""f32 KV: the two runtimes differ by float rounding only (measured 2e-6)."""
F16_KV = 3e-2
"""llama.cpp's default f16 KV cells (measured up to 7e-3 on these models)."""
QUESTION = "Ann has 3 apples and buys 4 more. How many apples does Ann have?"
CHAT = [{"role": "user", "content": QUESTION}]


@pytest.fixture(scope="module")
def gguf_dirs(tmp_path_factory, tiny_draft_dir, tiny_target_dir):
    """{"draft": dir, "target": dir}, each holding one f32 GGUF of the tiny model."""
    from tests.helpers.tiny_gguf import write_gguf

    out = {}
    for role, source in (("draft", tiny_draft_dir), ("target", tiny_target_dir)):
        directory = tmp_path_factory.mktemp(f"gguf_{role}")
        write_gguf(source, directory / f"{role}.gguf")
        out[role] = directory
    return out


def _llama(directory, **kwargs):
    """A fresh model (load_language_model would return the process-wide cached one)."""
    from specs_engine.backends.llamacpp.lm import LlamaCppLM, gguf_path

    return LlamaCppLM(gguf_path(str(directory)), n_threads=1, **kwargs)


@pytest.fixture(scope="module")
def pairs(gguf_dirs, tiny_draft_dir, tiny_target_dir):
    """role -> (llama.cpp model with f32 KV, transformers float32 model), same weights."""
    out = {}
    for role, source in (("draft", tiny_draft_dir), ("target", tiny_target_dir)):
        llama = _llama(gguf_dirs[role], kv_type="f32")
        hf = TransformersLM.from_pretrained(source, dtype="float32")
        # llama.cpp also ends generation at <|im_end|> (it reads the chat markers); the tiny
        # transformers config names only <|endoftext|>. Same rule on both for the comparison.
        hf.eos_token_ids = llama.eos_token_ids
        out[role] = (llama, hf)
    return out


def _max_gap(a, b) -> float:
    return max((abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb)), default=0.0)


def test_encoding_and_fingerprint_match_the_gguf_tokenizer(pairs):
    llama, hf = pairs["draft"]
    text = "Bob has 12 pens.\n\nThen 12 + 5 = 17.\n\nThe answer is \\boxed{17}."
    assert llama.encode(text) == hf.encode(text)
    assert llama.encode_prompt(CHAT) == hf.encode_prompt(CHAT)
    assert llama.encode_prompt(QUESTION) == hf.encode_prompt(QUESTION)
    assert llama.decode(llama.encode(text)) == text
    assert llama.tokenizer_fingerprint == pairs["target"][0].tokenizer_fingerprint
    assert llama.context_window == 2048  # the GGUF's trained context (n_ctx is larger)


@pytest.mark.parametrize("sampling", [
    dict(temperature=1.0), dict(temperature=0.7, top_p=0.8), dict(greedy=True),
])
@pytest.mark.parametrize("role", ["draft", "target"])
def test_proposals_equal_transformers_token_for_token(pairs, role, sampling):
    llama, hf = pairs[role]
    prefix = hf.encode_prompt(CHAT)
    params = ProposalParams(delimiter="\n\n", max_new_tokens=24, seed=7, **sampling)
    [ours] = llama.propose([prefix], 6, params)
    [theirs] = hf.propose([prefix], 6, params)
    assert [c.token_ids for c in ours] == [c.token_ids for c in theirs]
    assert [c.finish_reason for c in ours] == [c.finish_reason for c in theirs]
    assert [c.text for c in ours] == [c.text for c in theirs]
    assert _max_gap([c.token_logprobs for c in ours], [c.token_logprobs for c in theirs]) < EXACT


def test_batched_scores_over_several_prefixes_equal_transformers(pairs):
    llama, hf = pairs["target"]
    first = hf.encode_prompt(CHAT)
    second = hf.encode_prompt("Cara has 5 books.")
    conts = [hf.encode(" Ann starts with 3 apples."), hf.encode("\n\n"), [], hf.encode(" 5 + 2 = 7")]
    prefixes = [first, first, first, second]
    ours, theirs = llama.score(prefixes, conts), hf.score(prefixes, conts)
    assert [len(s) for s in ours] == [len(c) for c in conts]
    assert _max_gap(ours, theirs) < EXACT


def test_beams_of_different_lengths_decode_as_one_batch(gguf_dirs, pairs, monkeypatch):
    """Every beam's candidates in one llama_decode per token (each token at its own
    sequence and position, no padding), with the candidates transformers decodes beam by
    beam; a duplicate beam is prefilled once."""
    llama, hf = _llama(gguf_dirs["target"], kv_type="f32"), pairs["target"][1]
    first, second = hf.encode_prompt(CHAT), hf.encode_prompt("Cara has 5 books.")
    assert len(first) != len(second)
    calls = []
    decode = llama.native.decode
    monkeypatch.setattr(llama.native, "decode", lambda batch, **kw: calls.append(len(batch)) or decode(batch, **kw))
    params = ProposalParams("\n\n", 16, greedy=True)
    ours = llama.propose([first, second, first], 2, params)
    theirs = hf.propose([first, second, first], 2, params)
    assert [[c.token_ids for c in b] for b in ours] == [[c.token_ids for c in b] for b in theirs]
    assert _max_gap([c.token_logprobs for b in ours for c in b], [c.token_logprobs for b in theirs for c in b]) < EXACT
    longest = max(len(c.token_ids) for b in ours for c in b)
    assert calls[:2] == [len(first), len(second)]  # two prefills: the duplicate shares the first
    assert len(calls) == 2 + longest - 1  # then one decode per token for all six candidates
    assert sum(calls[2:]) == sum(len(c.token_ids) - 1 for b in ours for c in b)  # (the last is never fed)


def test_default_f16_kv_cells_stay_within_the_measured_gap(gguf_dirs, pairs):
    llama = _llama(gguf_dirs["target"], cache_size=0)
    _, hf = pairs["target"]
    prefix = hf.encode_prompt(CHAT)
    conts = [c.token_ids for c in hf.propose([prefix], 4, ProposalParams("\n\n", 24, seed=2))[0]]
    gap = _max_gap(llama.score([prefix] * 4, conts), hf.score([prefix] * 4, conts))
    assert 0 < gap < F16_KV


def test_next_step_reuses_the_cached_prefix(gguf_dirs):
    llama = _llama(gguf_dirs["target"], kv_type="f32")
    prefix = tuple(llama.encode_prompt(CHAT))
    [cands] = llama.propose([prefix], 4, ProposalParams("\n\n", 16, seed=1))
    assert llama.prefill_tokens == len(prefix)  # the prompt ran once for all 4 candidates
    llama.score([prefix] * 4, [c.token_ids for c in cands])
    assert llama.prefill_tokens == len(prefix)  # scoring reused the prompt's cells
    accepted = prefix + cands[0].token_ids
    llama.propose([accepted], 2, ProposalParams("\n\n", 16, seed=2))
    assert llama.prefill_tokens == len(prefix)  # scored whole: its logits were kept
    fresh = _llama(gguf_dirs["target"], kv_type="f32", cache_size=0)
    [again] = fresh.propose([accepted], 2, ProposalParams("\n\n", 16, seed=2))
    assert fresh.prefill_tokens == len(accepted)
    [cached] = llama.propose([accepted], 2, ProposalParams("\n\n", 16, seed=2))
    assert [c.token_ids for c in cached] == [c.token_ids for c in again]
    assert _max_gap([c.token_logprobs for c in cached], [c.token_logprobs for c in again]) < EXACT


def test_candidates_share_the_prefix_cells_instead_of_copying_them(gguf_dirs):
    prompt = "apples " * 100
    # 8 private copies of the ~100-token prompt would need 8 * 116 cells; shared, 100 + 8 * 16.
    llama = _llama(gguf_dirs["draft"], n_ctx=256, cache_size=0)
    prefix = llama.encode_prompt(prompt)
    assert 90 < len(prefix) < 110
    [cands] = llama.propose([prefix], 8, ProposalParams("\n\n", 16, temperature=1.5, seed=0))
    assert len(cands) == 8 and all(c.token_ids for c in cands)
    scores = llama.score([prefix] * 8, [c.token_ids for c in cands])
    assert all(len(s) == len(c.token_ids) for s, c in zip(scores, cands))


def test_stop_strings_cut_candidates_as_transformers_does(pairs):
    llama, hf = pairs["draft"]
    prefix = hf.encode_prompt(CHAT)
    params = ProposalParams("\n\n", 24, seed=5, stop=(" has", "5", "apples"), temperature=1.5)
    [ours], [theirs] = llama.propose([prefix], 6, params), hf.propose([prefix], 6, params)
    assert [(c.token_ids, c.finish_reason) for c in ours] == [(c.token_ids, c.finish_reason) for c in theirs]


def test_a_passed_deadline_returns_one_token_per_candidate(pairs):
    llama, _ = pairs["draft"]
    params = ProposalParams("\n\n", 64, seed=0, deadline=time.monotonic() - 1)
    [cands] = llama.propose([llama.encode_prompt(CHAT)], 3, params)
    assert all(c.finish_reason in ("deadline", "eos", "delimiter") and len(c.token_ids) == 1 for c in cands)



def test_a_passed_deadline_reads_no_states_and_spends_no_decode_on_them(pairs, monkeypatch):
    """Out of time the search salvages the round without rewards: reading states then
    would only overrun the budget (it cost ~0.3 s on the real 1.5B at batch 4)."""
    llama, _ = pairs["draft"]
    prompt = llama.encode_prompt(CHAT)
    llama.propose([prompt], 1, ProposalParams("\n\n", 1))  # the prompt is cached from here on
    calls = _decode_count(monkeypatch, llama)
    late = dict(seed=0, deadline=time.monotonic() - 1)
    [plain] = llama.propose([prompt], 3, ProposalParams("\n\n", 64, **late))
    plain_decodes = calls[0]
    [probed] = llama.propose([prompt], 3, ProposalParams("\n\n", 64, with_states=True, **late))
    assert calls[0] == 2 * plain_decodes
    assert all(c.state is None for c in probed)
    assert [c.token_ids for c in probed] == [c.token_ids for c in plain]
    [again] = llama.propose([prompt], 3, ProposalParams("\n\n", 4, seed=1, with_states=True))
    assert all(c.state is not None for c in again)  # the skipped sequences went back to the pool


STATE_EXACT = 1e-4
"""f32 KV: final hidden states agree with transformers' to float rounding (measured 2e-6)."""


def _decode_count(monkeypatch, llama) -> list[int]:
    """A one-element list counting llama_decode calls from now on."""
    calls, original = [0], llama.native.lib.llama_decode

    def counting(ctx, batch):
        calls[0] += 1
        return original(ctx, batch)

    monkeypatch.setattr(llama.native.lib, "llama_decode", counting)
    return calls


def _hf_state(hf, ids) -> np.ndarray:
    """transformers' final (post-norm) hidden state at the last of ids, one plain forward."""
    import torch

    with torch.inference_mode():
        return hf.model(torch.tensor([list(ids)]), output_hidden_states=True).hidden_states[-1][0, -1].numpy()


@pytest.mark.parametrize("offset", [0, 1])
def test_score_with_states_gives_score_and_the_transformers_states(pairs, offset):
    """The state `offset` tokens before each continuation's last: a plain forward's state
    at that position; None for a continuation of offset tokens or fewer ("\n\n" is one)."""
    llama, hf = pairs["target"]
    first, second = hf.encode_prompt(CHAT), hf.encode_prompt("Cara has 5 books.")
    conts = [hf.encode(" Ann starts with 3 apples.\n\n"), hf.encode("\n\n"), [], hf.encode(" 5 + 2 = 7")]
    prefixes = [first, first, first, second]
    scores, states = llama.score_with_states(prefixes, conts, offset=offset)
    assert _max_gap(scores, llama.score(prefixes, conts)) < 1e-5  # other KV cells: rounding
    assert states[2] is None and scores[2] == [] and len(conts[1]) == 1
    for prefix, cont, state in zip(prefixes, conts, states):
        if len(cont) <= offset:
            assert state is None
        else:
            assert state.dtype == np.float32 and state.shape == (hf.model.config.hidden_size,)
            assert np.abs(state - _hf_state(hf, prefix + cont[: len(cont) - offset])).max() < STATE_EXACT
    with pytest.raises(ConfigError, match="offset=-1 is not allowed: give a non-negative integer"):
        llama.score_with_states(prefixes, conts, offset=-1)


def test_score_with_states_makes_no_more_decodes_than_score(gguf_dirs, monkeypatch):
    counts = []
    for offset in (None, 0, 1):  # None: plain score
        llama = _llama(gguf_dirs["target"], kv_type="f32")
        score = llama.score if offset is None else functools.partial(llama.score_with_states, offset=offset)
        prefix = llama.encode_prompt(CHAT)
        conts = [llama.encode(t) for t in (" Ann has 3.\n\n", " 3 + 4 = 7", "7")]
        calls = _decode_count(monkeypatch, llama)
        score([prefix] * 3, conts)
        score([prefix + conts[0]] * 2, conts[1:])
        counts.append(calls[0])
    assert counts == [3, 3, 3]  # the prompt's prefill, then one batch per call


@pytest.mark.parametrize("offset", [0, 1])
def test_proposals_with_states_are_the_same_candidates_with_the_transformers_states(pairs, monkeypatch, offset):
    """Each candidate's state `offset` tokens before its last token, from ONE extra
    batched decode (feeding each candidate's last offset + 1 tokens); a plain forward's
    state at that position, or None for a candidate of offset tokens or fewer."""
    llama, hf = pairs["draft"]
    prefix = tuple(hf.encode_prompt(CHAT))
    settings = dict(delimiter="\n\n", max_new_tokens=16, seed=5, temperature=1.5, stop=(" has", "5", "apples"))
    llama.propose([prefix], 1, ProposalParams("\n\n", 1))  # the prompt is cached from here on
    calls = _decode_count(monkeypatch, llama)
    [plain] = llama.propose([prefix], 6, ProposalParams(**settings))
    plain_decodes = calls[0]
    [probed] = llama.propose([prefix], 6, ProposalParams(with_states=True, state_offset=offset, **settings))
    assert calls[0] - plain_decodes == plain_decodes + 1  # the same decodes, and one for the states
    assert [(c.token_ids, c.finish_reason) for c in probed] == [(c.token_ids, c.finish_reason) for c in plain]
    assert _max_gap([c.token_logprobs for c in probed], [c.token_logprobs for c in plain]) < 1e-5
    assert all(c.state is None for c in plain)
    assert "stop" in {c.finish_reason for c in probed} and len({len(c.token_ids) for c in probed}) > 1
    for cand in probed:
        if len(cand.token_ids) > offset:
            read = prefix + cand.token_ids[: len(cand.token_ids) - offset]
            assert np.abs(cand.state - _hf_state(hf, read)).max() < STATE_EXACT
        else:
            assert cand.state is None
    before = llama.prefill_tokens
    longest = max(probed, key=lambda c: len(c.token_ids))
    llama.propose([prefix + longest.token_ids], 2, ProposalParams("\n\n", 4, seed=1))
    assert llama.prefill_tokens == before  # the states' decode left the candidate cached whole


def test_native_states_keep_only_the_tokens_marked_for_output(pairs):
    """With embeddings on, llama.cpp makes every token of a batch an output: decode still
    returns rows for the marked tokens only, logits and states alike."""
    from specs_engine.backends.llamacpp.native import Token

    llama, hf = pairs["target"]
    ids = hf.encode_prompt("Cara has 5 books.")
    seq = llama._pool.acquire(1)[0]
    try:
        marked = {1, len(ids) - 1}
        out = llama.native.decode([Token(t, k, seq, k in marked) for k, t in enumerate(ids)], states=True)
    finally:
        llama._pool.release(seq)
    assert out.logits.shape == (2, llama.vocab_size) and out.states.shape == (2, hf.model.config.hidden_size)
    for row, k in enumerate(sorted(marked)):
        assert np.abs(out.states[row] - _hf_state(hf, ids[: k + 1])).max() < STATE_EXACT


def test_bad_inputs_are_refused_before_any_model_work(pairs, gguf_dirs, tmp_path):
    llama, _ = pairs["draft"]
    with pytest.raises(ConfigError, match="fills the context window"):
        llama.propose([[1] * 2048], 2, ProposalParams("\n\n", 8))
    with pytest.raises(ConfigError, match="exceeds the context window"):
        llama.score([[1] * 2000], [[1] * 60])
    with pytest.raises(ConfigError, match="not a token id"):
        llama.score([[1]], [[10**6]])
    with pytest.raises(ConfigError, match="kv_type='bf16' is not allowed"):
        _llama(gguf_dirs["draft"], kv_type="bf16")
    with pytest.raises(ConfigError, match="holds 0 .gguf files"):
        _llama(tmp_path)
    with pytest.raises(ConfigError, match="device='cuda' is not allowed"):
        load_language_model(str(gguf_dirs["draft"]), backend="llama.cpp", device="cuda")


def test_kv_pool_too_small_for_one_request_says_which_knob(gguf_dirs):
    llama = _llama(gguf_dirs["draft"], n_ctx=256, cache_size=0)
    with pytest.raises(SpecsError, match="larger n_ctx"):
        llama.score([[1] * 100] * 8, [[1] * 30] * 8)  # 100 + 8 * 30 cells > 256
    assert llama.score([[1] * 100], [[1] * 30])  # the failed call left the pool usable


def test_missing_llama_cpp_names_the_install_command_and_its_needs(gguf_dirs, monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'specs-tts\[llama-cpp\]'.*compiler and cmake"):
        load_language_model(str(gguf_dirs["draft"]), backend="llama.cpp", n_ctx=128)


def test_specs_search_end_to_end_on_llama_cpp_equals_transformers(gguf_dirs, pairs, tiny_reward_dir,
                                                                 tiny_draft_dir, tiny_target_dir):
    """The whole search (draft rounds, target scoring, deferral, reward) on llama.cpp
    makes the choices the transformers engine makes on the same weights."""
    reward = ValueHeadPRM.from_directory(tiny_reward_dir, dtype="float32")
    llama = SpecsEngine(pairs["draft"][0], pairs["target"][0], reward=reward)
    hf = SpecsEngine(pairs["draft"][1], pairs["target"][1], reward=llama.reward)
    # two beams: both runtimes sample every beam's candidates in one batch, in one order
    config = SpecsConfig(n=4, beam_width=2, seed=3, accept_threshold=-math.inf, tau=0.0, max_step_tokens=12)
    ours = llama.generate(CHAT, "specs", config, Budget(max_steps=5))
    theirs = hf.generate(CHAT, "specs", config, Budget(max_steps=5))
    assert ours.steps and ours.stats.target_scored_tokens > 0
    assert ours.stats.steps_from_draft >= 1
    assert ours.text == theirs.text
    assert [s.source for s in ours.steps] == [s.source for s in theirs.steps]


def test_engine_loads_llama_cpp_models_by_backend_name(gguf_dirs, tiny_reward_dir):
    engine = SpecsEngine.from_pretrained(draft=str(gguf_dirs["draft"]), target=str(gguf_dirs["target"]),
                                         reward=str(tiny_reward_dir), backend="llama.cpp", n_threads=1)
    assert type(engine.draft).__name__ == "LlamaCppLM"
    result = engine.generate(QUESTION, "specs", SpecsConfig(n=2, beam_width=2, seed=0), Budget(max_steps=3))
    assert result.steps and math.isfinite(result.stats.wall_s)
    assert np.isfinite([s.reward for s in result.steps if s.reward is not None]).all()


def test_from_pretrained_passes_n_threads_to_the_llama_cpp_context(gguf_dirs):
    """The default takes every usable core; n_threads= through from_pretrained sets the
    context's threads (3: not the 2 cores of the test machines, so the default fails it)."""
    engine = SpecsEngine.from_pretrained(target=str(gguf_dirs["target"]), backend="llama.cpp", n_threads=3)
    native = engine.target.native
    assert native.lib.llama_n_threads(native.ctx) == 3
    assert native.lib.llama_n_threads_batch(native.ctx) == 3


def test_a_token_longer_than_the_piece_buffer_is_decoded_whole(tmp_path, tiny_target_dir):
    """piece() asks llama.cpp with a 256-byte buffer; a longer token (a negative answer:
    the size needed) is asked again with that size rather than read as b""."""
    from specs_engine.backends.llamacpp.native import Native
    from tests.helpers.tiny_gguf import write_gguf

    long_text = "a" * 300  # byte-level BPE writes the byte "a" as "a"
    path = write_gguf(tiny_target_dir, tmp_path / "long.gguf", token_texts={300: long_text})
    native = Native(str(path), n_ctx=64, n_batch=32, n_seq_max=2, n_threads=1)
    try:
        assert native.piece(300) == long_text.encode()
        assert native.detokenize([300, 300]) == long_text * 2
    finally:
        native.close()


def test_registry_model_runs_its_verified_gguf_and_refuses_a_corrupt_one(gguf_dirs, tmp_path, monkeypatch):
    """A registry name on llama.cpp: parts assembled and checked against the sha256, the
    GGUF kept in the cache entry and loaded from there; a wrong hash stops before llama.cpp."""
    from specs_engine import sources

    blob = (gguf_dirs["draft"] / "draft.gguf").read_bytes()
    parts = [tmp_path / "part1", tmp_path / "part2"]
    parts[0].write_bytes(blob[: len(blob) // 2])
    parts[1].write_bytes(blob[len(blob) // 2 :])
    good = sources.RegistryModel(name="tiny-gguf", origin="test", part_module="none", part_dist="none",
                                 num_parts=2, version="1", sha256=hashlib.sha256(blob).hexdigest(),
                                 gguf_file="tiny.gguf")
    bad = dataclasses.replace(good, name="tiny-corrupt", sha256="ab" * 32)
    for entry in (good, bad):
        monkeypatch.setitem(sources.REGISTRY, entry.name, entry)
    monkeypatch.setattr(sources, "part_paths", lambda entry: parts)
    monkeypatch.setattr(sources, "convert_gguf_to_safetensors",  # the bf16 copy is not what is tested
                        lambda source, gguf_file, out: (out / "config.json").write_text("{}"))
    monkeypatch.setenv("SPECS_CACHE", str(tmp_path / "cache"))
    lm = load_language_model("tiny-gguf", backend="llama.cpp", n_threads=1)
    assert lm.encode("Ann has apples") == _llama(gguf_dirs["draft"], n_ctx=256).encode("Ann has apples")
    assert (tmp_path / "cache" / "models" / "tiny-gguf" / "tiny.gguf").read_bytes() == blob
    assert choose_backend(None, ["tiny-gguf"], "cpu") == "llama.cpp"
    with pytest.raises(ChecksumError, match="ab" * 32):
        load_language_model("tiny-corrupt", backend="llama.cpp", n_threads=1)


def test_preset_picks_llama_cpp_on_cpu_when_it_is_installed(monkeypatch):
    presets = ["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"]
    assert choose_backend(None, presets, "cpu") == "llama.cpp"
    assert choose_backend("transformers", presets, "cpu") == "transformers"  # asked for by name
    assert choose_backend(None, presets, "cuda") == "transformers"
    assert choose_backend(None, ["some/dir", presets[1]], "cpu") == "transformers"  # no GGUF for a dir
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    assert choose_backend(None, presets, "cpu") == "transformers"


def test_from_pretrained_with_the_preset_loads_every_role_on_the_chosen_backend(monkeypatch):
    """Which backend each role is loaded with (the loaders are recorded, not run)."""
    import specs_engine.backends as backends
    import specs_engine.rewards as rewards
    from tests.helpers.scripted import ScriptedReward, script_lm

    calls = []

    def record(result):
        return lambda location, backend, **kwargs: calls.append((location, backend)) or result

    monkeypatch.setattr(backends, "load_language_model", record(script_lm("lm", ("step",))))
    monkeypatch.setattr(rewards, "load_reward_model", record(ScriptedReward(0.5)))
    SpecsEngine.from_pretrained(preset="qwen2.5-coder")
    assert calls == [("specs-probe-target", "llama.cpp"), ("qwen2.5-coder-0.5b", "llama.cpp"),
                     ("qwen2.5-coder-1.5b", "llama.cpp")]
    calls.clear()
    SpecsEngine.from_pretrained(preset="qwen2.5-coder", backend="transformers")
    assert {backend for _, backend in calls} == {"transformers"}
