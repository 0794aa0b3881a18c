"""The candidate rules every runtime shares (backends/candidates.py), as pure functions."""

from __future__ import annotations

import pytest

from specs_engine.backends.candidates import (
    check_count, check_pairs, pair_up, prefix_seed, reported_finish_reason, stop_strings,
    text_before_stop, tokenizer_fingerprint, tokens_within,
)
from specs_engine.errors import ConfigError
from specs_engine.models import ProposalParams


@pytest.mark.parametrize("count", [0, -1, 1.0, True, "2", None])
def test_num_candidates_must_be_a_positive_integer(count):
    with pytest.raises(ConfigError, match=f"num_candidates={count!r} is not allowed"):
        check_count(count)


def test_pairs_must_match_one_to_one():
    check_pairs([[1]], [[2]])
    with pytest.raises(ConfigError, match="2 prefixes and 1 continuations: give one prefix per continuation"):
        check_pairs([[1], [1]], [[2]])


def test_prefix_seeds_differ_per_prefix_fit_31_bits_and_stay_unseeded_without_a_seed():
    seeds = [prefix_seed(2**40, i) for i in range(64)]
    assert len(set(seeds)) == 64 and all(0 <= s < 2**31 for s in seeds)
    assert prefix_seed(7, 3) == (7 * 1_000_003 + 3 * 65_537) % 2**31  # same as before the move
    assert prefix_seed(None, 3) is None


def test_stop_strings_put_the_delimiter_first():
    assert stop_strings(ProposalParams("\n\n", 8, stop=("Q:", "END"))) == ["\n\n", "Q:", "END"]


@pytest.mark.parametrize(
    "finished, stop_reason, expected",
    [(None, None, "deadline"), ("length", "\n\n", "length"), ("stop", "\n\n", "delimiter"),
     ("stop", "Q:", "stop"), ("stop", None, "eos"), ("stop", 151645, "eos")],
)
def test_reported_finish_reason(finished, stop_reason, expected):
    assert reported_finish_reason(finished, stop_reason, "\n\n") == expected


def test_text_before_stop_drops_the_stop_string_and_what_follows():
    assert text_before_stop("x = 1Q: next", "Q:") == "x = 1"
    assert text_before_stop("no stop here", "Q:") == "no stop here"


def test_tokens_within_keeps_the_tokens_whose_text_fits():
    pieces = ["x ", "= 1", "Q", ": next"]

    def text_of(m: int) -> str:
        return "".join(pieces[:m])

    assert tokens_within(4, "x = 1", text_of) == 2
    assert tokens_within(4, "x = 1Q", text_of) == 3
    assert tokens_within(4, "x", text_of) == 0  # the first token already crosses the cut


class _Tokenizer:
    def __init__(self, vocab: dict[str, int], eos: int):
        self.vocab, self.eos_token_id, self.all_special_tokens = vocab, eos, ["<eos>"]

    def get_vocab(self) -> dict[str, int]:
        return dict(self.vocab)


def test_fingerprint_is_equal_exactly_when_ids_mean_the_same_text():
    a = tokenizer_fingerprint(_Tokenizer({"a": 0, "b": 1, "<eos>": 2}, 2))
    assert a == tokenizer_fingerprint(_Tokenizer({"b": 1, "<eos>": 2, "a": 0}, 2))
    assert a != tokenizer_fingerprint(_Tokenizer({"a": 1, "b": 0, "<eos>": 2}, 2))
    assert a != tokenizer_fingerprint(_Tokenizer({"a": 0, "b": 1, "<eos>": 2}, 1))


def test_pair_up_lists_the_pairs_and_which_need_scoring():
    pairs, todo = pair_up(((1, 2), (3,), (4,)), ((5,), (), [6, 7]))
    assert pairs == [([1, 2], [5]), ([3], []), ([4], [6, 7])] and todo == [0, 2]
    with pytest.raises(ConfigError, match="give one prefix per continuation"):
        pair_up([[1]], [])
