"""Shared fixtures: tiny offline models built once per test session (about a second).

The tiers are folders: tests/unit (scripted models, pure functions, milliseconds),
tests/integration (tiny real models and the real frameworks; the default command runs
these two), tests/slow (real Qwen models: -m slow) and tests/vllm (real vLLM, in its own
venv: scripts/vllm_tier.sh). A test in slow/ or vllm/ carries that marker from its folder,
so pyproject's addopts deselect it by default even if its file forgets the marker.
Helpers live in the tests.helpers package.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # tests never reach a model hub
os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch: worker threads read it too

import pytest  # noqa: E402
import torch  # noqa: E402

# Tiny models gain nothing from intra-op threads, and on a busy machine OpenMP's
# spin-waiting makes them up to 30x slower: one thread keeps every test fast.
# (set_num_threads covers this thread; OMP_NUM_THREADS above covers threads started later.)
torch.set_num_threads(1)

MARKED_TIERS = ("slow", "vllm")
"""Folders whose tests get the marker of the same name."""


def pytest_collection_modifyitems(config, items):
    here = os.path.dirname(os.path.abspath(__file__))
    for item in items:
        tier = os.path.relpath(str(item.path), here).split(os.sep)[0]
        if tier in MARKED_TIERS:
            item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from tests.helpers.tiny_models import build_tokenizer

    return build_tokenizer()


@pytest.fixture(scope="session")
def tiny_draft_dir(tmp_path_factory, tiny_tokenizer):
    """A tiny Qwen2 causal LM: the draft."""
    from tests.helpers.tiny_models import build_causal_lm

    return build_causal_lm(tmp_path_factory.mktemp("tiny_draft"), seed=0, tokenizer=tiny_tokenizer)


@pytest.fixture(scope="session")
def tiny_target_dir(tmp_path_factory, tiny_tokenizer):
    """A tiny Qwen2 causal LM with the draft's tokenizer and other weights: the target."""
    from tests.helpers.tiny_models import build_causal_lm

    path = tmp_path_factory.mktemp("tiny_target")
    return build_causal_lm(path, seed=1, hidden=64, tokenizer=tiny_tokenizer)


@pytest.fixture(scope="session")
def tiny_other_tokenizer_dir(tmp_path_factory):
    """A tiny Llama whose tokenizer differs from the draft's (token ids do not transfer)."""
    from tests.helpers.tiny_models import build_causal_lm, build_tokenizer

    path = tmp_path_factory.mktemp("tiny_other")
    return build_causal_lm(path, seed=4, kind="llama", tokenizer=build_tokenizer(300, byte_level=False))


@pytest.fixture(scope="session")
def tiny_reward_dir(tmp_path_factory, tiny_draft_dir):
    """A value-head PRM (random linear head) on the tiny draft, saved as a directory."""
    from specs_engine.backends.hf.lm import TransformersLM
    from specs_engine.backends.hf.value_head import ValueHeadPRM

    import torch

    torch.manual_seed(5)
    base = TransformersLM.from_pretrained(tiny_draft_dir, dtype="float32")
    prm = ValueHeadPRM.untrained(base)
    return prm.save_head(tmp_path_factory.mktemp("tiny_reward"), base=str(tiny_draft_dir))


@pytest.fixture(scope="session")
def tiny_seq_classifier_dir(tmp_path_factory):
    from tests.helpers.tiny_models import build_sequence_classifier

    return build_sequence_classifier(tmp_path_factory.mktemp("tiny_seqcls"))


@pytest.fixture(scope="session")
def tiny_step_prm_dir(tmp_path_factory):
    from tests.helpers.tiny_models import build_step_token_prm

    return build_step_token_prm(tmp_path_factory.mktemp("tiny_step_prm"))
