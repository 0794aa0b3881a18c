"""One model cache for language and reward models (backends' loader): each loads once per
process, even when many threads ask at once, and each role can be forgotten alone."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from specs_engine.backends import (
    clear_model_cache, clear_reward_cache, load_count, load_language_model, load_reward_model,
)


def test_a_value_head_reward_shares_its_base_with_the_draft(tiny_draft_dir, tiny_reward_dir):
    clear_model_cache()
    before = load_count()
    draft = load_language_model(tiny_draft_dir, dtype="float32")
    reward = load_reward_model(str(tiny_reward_dir), dtype="float32")
    assert reward.lm is draft  # the head's base came from the same cache, not from disk again
    assert load_reward_model(str(tiny_reward_dir), dtype="float32") is reward
    assert load_count() == before + 2


def test_concurrent_reward_loads_load_once(tiny_reward_dir):
    clear_model_cache()
    before = load_count()
    with ThreadPoolExecutor(4) as pool:
        rewards = list(pool.map(lambda _: load_reward_model(str(tiny_reward_dir), dtype="float32"), range(4)))
    assert all(r is rewards[0] for r in rewards)
    assert load_count() == before + 2  # the reward and its base, once each


def test_clearing_the_rewards_keeps_the_language_models(tiny_draft_dir, tiny_reward_dir):
    draft = load_language_model(tiny_draft_dir, dtype="float32")
    reward = load_reward_model(str(tiny_reward_dir), dtype="float32")
    clear_reward_cache()
    assert load_language_model(tiny_draft_dir, dtype="float32") is draft
    assert load_reward_model(str(tiny_reward_dir), dtype="float32") is not reward
