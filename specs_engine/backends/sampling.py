"""Next-token sampling that also returns each token's log-prob under its own distribution.

SPECS needs log p_draft(step) exactly as the draft sampled it (temperature and top-p
applied), so the sampler and the log-prob come from one place.
"""

from __future__ import annotations

from typing import Any, Optional

import torch


def seeded_generator(seed: Optional[int], device: Any = "cpu") -> torch.Generator:
    """The generator of one proposal call: seeded by the call's seed, else fresh."""
    generator = torch.Generator(device=device)
    generator.manual_seed(seed if seed is not None else torch.seed())
    return generator


def sample_next(
    logits: torch.Tensor, temperature: float, top_p: float, greedy: bool,
    generator: Optional[torch.Generator],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample one token per row of float32 logits [rows, vocab]: (tokens, log-probs).

    Greedy takes the argmax and reports its log-prob at temperature 1 (the model's own
    distribution), since no sampling distribution exists.
    """
    if greedy:
        logp = torch.log_softmax(logits, dim=-1)
        tokens = logp.argmax(dim=-1)
    else:
        logp = _nucleus(torch.log_softmax(logits / temperature, dim=-1), top_p)
        tokens = torch.multinomial(logp.exp(), 1, generator=generator).squeeze(-1)
    return tokens, logp.gather(-1, tokens[:, None]).squeeze(-1)


def _nucleus(logp: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of tokens whose mass reaches top_p, renormalised."""
    if top_p >= 1.0:
        return logp
    sorted_logp, order = logp.sort(dim=-1, descending=True)
    mass_before = sorted_logp.exp().cumsum(dim=-1) - sorted_logp.exp()
    drop_sorted = mass_before >= top_p  # the first token is always kept
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    kept = logp.masked_fill(drop, float("-inf"))
    return kept - torch.logsumexp(kept, dim=-1, keepdim=True)
