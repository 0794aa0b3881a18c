"""transformers deprecates APIs a release or two before removing them (the
`past_key_values` keyword, for one): a propose, a score, a reward on the tiny models and
a whole generate must raise no FutureWarning or DeprecationWarning, so the next
transformers cannot break a run that works today."""

from __future__ import annotations

import warnings

from specs_engine import Budget, SpecsEngine
from specs_engine.backends.hf.lm import TransformersLM
from specs_engine.models import ProposalParams
from specs_engine.rewards import load_reward_model


def test_propose_score_and_reward_raise_no_deprecation_warning(
    tiny_draft_dir, tiny_reward_dir, tiny_seq_classifier_dir, tiny_step_prm_dir
):
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        warnings.simplefilter("error", DeprecationWarning)
        lm = TransformersLM.from_pretrained(tiny_draft_dir, dtype="float32")
        prompt = lm.encode_prompt("Ann has 3 apples and buys 4 more. How many apples?")
        params = ProposalParams(delimiter="\n\n", max_new_tokens=8, temperature=0.7, seed=0)
        candidates = lm.propose([prompt], 2, params)[0]
        lm.propose([[*prompt, *candidates[0].token_ids]], 2, params)  # over the cached prefix
        assert len(lm.score([prompt] * 2, [c.token_ids for c in candidates])) == 2
        for location in (tiny_reward_dir, tiny_seq_classifier_dir, tiny_step_prm_dir):
            reward = load_reward_model(location, dtype="float32")
            assert len(reward.score("How many?", [["Step one.\n\n", "Step two."]])) == 1
        result = SpecsEngine(lm, lm, reward).generate("How many?", budget=Budget(max_steps=2))
        assert result.steps
