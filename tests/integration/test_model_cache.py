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


def test_a_loaded_model_is_returned_while_another_key_is_loading(tiny_draft_dir):
    """A hit must not queue behind a slow load of another model (integrations look their
    engine up on every call, and would count that wait as load time outside the budget)."""
    import threading

    from specs_engine import backends

    draft = load_language_model(tiny_draft_dir, dtype="float32")
    loading, release = threading.Event(), threading.Event()

    def slow_load():
        loading.set()
        release.wait(5)
        return object()

    other = threading.Thread(target=backends.load_once, args=(("engine", "slow"), slow_load))
    other.start()
    loading.wait(5)
    try:
        got = []
        hit = threading.Thread(target=lambda: got.append(
            load_language_model(tiny_draft_dir, dtype="float32")))
        hit.start()
        hit.join(2)
        assert got == [draft]  # answered while the other load still holds the lock
    finally:
        release.set()
        other.join()
        backends.clear_model_cache("engine")
