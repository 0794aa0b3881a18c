"""SpecsLLM (LangChain BaseLLM): settings plumbing, streaming, async, budgets, concurrency.

Most tests run on scripted fake models (milliseconds); the last ones run the same class
end to end on tiny real transformers models.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from tests.helpers.fakes import count_loads, fake_engine, ticks_during
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.caches import InMemoryCache
from langchain_core.globals import set_llm_cache
from langchain_core.prompts import PromptTemplate
from langchain_core.runnables import ConfigurableField

from specs_engine.errors import ConfigError
from specs_integrations.langchain import BudgetExhaustedError, SpecsLLM

FULL = "Target thinks about {q}.\n\nSo the answer is 42.\n\n#### 42"


@pytest.fixture
def engine():
    return fake_engine()


@pytest.fixture
def llm(engine):
    return SpecsLLM(engine=engine, latency_budget_s=30.0, n=4, beam_width=4)


class TokenCounter(BaseCallbackHandler):
    def __init__(self) -> None:
        self.tokens: list[str] = []

    def on_llm_new_token(self, token: str, **kwargs) -> None:
        self.tokens.append(token)


# ---- results -------------------------------------------------------------------------


def test_invoke_returns_the_search_result_text_with_stats_and_usage(llm):
    result = llm.generate(["What is 6*7?"])
    gen = result.generations[0][0]
    assert gen.text == FULL.format(q="What is 6*7?")
    info = gen.generation_info
    assert info["answer"] == "42" and info["finished"] and not info["budget_exhausted"]
    assert info["steps_from_target"] == 1 and info["steps_from_draft"] == 2
    assert [s["source"] for s in info["steps"]] == ["target", "draft", "draft"]
    for key in ("draft_s", "target_s", "reward_s", "overhead_s", "wall_s"):
        assert info[key] >= 0
    usage = result.llm_output["token_usage"]
    assert usage["completion_tokens"] == len(gen.text)  # the fakes: one char, one token
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_generate_sums_usage_over_prompts(llm):
    result = llm.generate(["a", "bb"])
    per = [g[0].generation_info["token_usage"]["total_tokens"] for g in result.generations]
    assert result.llm_output["token_usage"]["total_tokens"] == sum(per)
    assert [g[0].text for g in result.generations] == [FULL.format(q="a"), FULL.format(q="bb")]


# ---- settings: constructor < configurable < bind / invoke kwargs ---------------------


def test_constructor_settings_reach_the_engine(engine):
    SpecsLLM(engine=engine, latency_budget_s=3.0, max_steps=5, max_new_tokens=99, n=8,
             beam_width=2, beta=2.0, tau=0.1, seed=7, method="rsd").invoke("q")
    call = engine.calls[-1]
    assert call["method"] == "rsd"
    assert (call["budget"].latency_s, call["budget"].max_steps, call["budget"].max_new_tokens) == (
        3.0, 5, 99)
    config = call["config"]
    assert (config.n, config.beam_width, config.beta, config.tau, config.seed) == (8, 2, 2.0, 0.1, 7)


def test_configurable_reaches_a_chain_without_configurable_fields(llm, engine):
    chain = PromptTemplate.from_template("Q: {q}") | llm
    chain.invoke({"q": "x"}, config={"configurable": {"latency_budget_s": 2.0, "n": 8}})
    assert engine.calls[-1]["budget"].latency_s == 2.0
    assert engine.calls[-1]["config"].n == 8


def test_prefixed_configurable_key_wins_over_the_bare_one(llm, engine):
    llm.invoke("x", config={"configurable": {"max_steps": 3, "specs_max_steps": 2}})
    assert engine.calls[-1]["budget"].max_steps == 2


def test_bind_and_invoke_kwargs_win_over_configurable(llm, engine):
    bound = llm.bind(max_steps=1)
    text = bound.invoke("x", config={"configurable": {"max_steps": 3}})
    assert engine.calls[-1]["budget"].max_steps == 1
    assert text == "Target thinks about x.\n\n"
    llm.invoke("x", config={"configurable": {"n": 8}}, n=2, beam_width=2)
    assert engine.calls[-1]["config"].n == 2


def test_with_config_and_max_tokens_alias(llm, engine):
    llm.with_config(configurable={"max_tokens": 12}).invoke("x")
    assert engine.calls[-1]["budget"].max_new_tokens == 12


def test_langchain_own_configurable_keys_are_left_alone(llm, engine):
    llm.invoke("x", config={"configurable": {"thread_id": "t1", "checkpoint_ns": "", "user": 3}})
    assert engine.calls[-1]["budget"].max_steps == 16


def test_unknown_prefixed_key_is_an_error_naming_it(llm):
    with pytest.raises(ConfigError, match="'specs_latency'"):
        llm.invoke("x", config={"configurable": {"specs_latency": 2.0}})


def test_wrong_type_in_configurable_names_the_key(llm, engine):
    with pytest.raises(ConfigError, match=r"configurable\['n'\]='8'.*integer"):
        llm.invoke("x", config={"configurable": {"n": "8"}})
    with pytest.raises(ConfigError, match=r"latency_budget_s=-1"):
        llm.invoke("x", latency_budget_s=-1)
    assert engine.calls == []  # refused before any model ran


def test_unknown_invoke_kwarg_is_an_error(llm):
    with pytest.raises(ConfigError, match="'latency'.*allowed per-call settings"):
        llm.invoke("x", latency=2.0)


def test_bad_constructor_settings_fail_at_construction(engine):
    with pytest.raises(ValueError, match="beam_width"):
        SpecsLLM(engine=engine, n=6, beam_width=4)
    with pytest.raises(ValueError, match="temperature=0.0 is not allowed.*n=4.*use n=1"):
        SpecsLLM(engine=engine, temperature=0.0, n=4)
    with pytest.raises(ValueError, match="latency_budget"):
        SpecsLLM(engine=engine, latency_budget=2.0)  # a typo is not silently ignored
    with pytest.raises(ValueError, match="no models: pass engine="):
        SpecsLLM()


def test_temperature_zero_means_greedy(engine):
    """With method='greedy', temperature=0 reaches the engine as a valid greedy call (the
    engine itself refuses a sampling temperature of 0) and answers as greedy does."""
    zero = SpecsLLM(engine=engine, method="greedy", temperature=0.0).invoke("x")
    plain = SpecsLLM(engine=engine, method="greedy").invoke("x")
    first, second = engine.calls
    assert first["method"] == second["method"] == "greedy"
    assert zero == plain == "Target thinks about x.\n\nTarget checks it.\n\n#### 42"


def test_temperature_zero_means_greedy_proposals_one_candidate_per_step(engine):
    llm = SpecsLLM(engine=engine, temperature=0.0)
    first = llm.invoke("x")
    config = engine.calls[-1]["config"]
    assert (config.temperature, config.n, config.beam_width) == (0.0, 1, 1)
    assert llm.invoke("x") == first  # no seed, nothing sampled: the same answer


def test_temperature_zero_proposes_greedily_on_real_models(tiny_draft_dir, tiny_target_dir,
                                                          tiny_reward_dir):
    llm = SpecsLLM(draft=str(tiny_draft_dir), target=str(tiny_target_dir),
                   reward=str(tiny_reward_dir), temperature=0.0, max_steps=3, max_new_tokens=24)
    answers = {llm.invoke("Ann has 3 apples.") for _ in range(2)}
    assert len(answers) == 1
    assert llm.get_num_tokens("Ann has 3 apples.") == len(
        llm.get_engine().target.encode("Ann has 3 apples."))
    assert llm.get_token_ids("Ann has") != []


def test_single_model_role_reaches_the_engine(llm, engine):
    llm.invoke("x", method="best_of_n", model_role="draft")
    assert (engine.calls[-1]["method"], engine.calls[-1]["model"]) == ("best_of_n", "draft")


# ---- identity: cache key and tracing -------------------------------------------------


def test_settings_are_part_of_the_cache_key(llm, engine):
    set_llm_cache(InMemoryCache())
    try:
        chain = PromptTemplate.from_template("{q}") | llm
        for _ in range(2):
            chain.invoke({"q": "x"}, config={"configurable": {"max_steps": 2}})
        assert len(engine.calls) == 1  # the second call was a cache hit
        chain.invoke({"q": "x"}, config={"configurable": {"max_steps": 3}})
        SpecsLLM(engine=engine, latency_budget_s=5.0).invoke("x")
        assert len(engine.calls) == 3
        llm.bind(max_steps=1).invoke("x")
        llm.bind(max_steps=1).invoke("x")
        llm.bind(max_steps=2).invoke("x")  # same as the first configured call: cached
        assert len(engine.calls) == 4
    finally:
        set_llm_cache(None)


def test_identifying_and_ls_params(llm):
    params = llm._identifying_params
    assert params["latency_budget_s"] == 30.0 and params["draft_model"] == "fake-draft"
    assert params["target_model"] == "fake-target" and params["reward_model"] == "fake-prm"
    ls = llm._get_ls_params(stop=["\n"], temperature=0.5, max_tokens=64)
    assert ls == {"ls_provider": "specs", "ls_model_name": "fake-target", "ls_model_type": "llm",
                  "ls_temperature": 0.5, "ls_max_tokens": 64, "ls_stop": ["\n"],
                  "ls_latency_budget_s": 30.0, "ls_method": "specs", "ls_n": 4}
    assert llm._get_ls_params(latency_budget_s=2.0, max_steps=3)["ls_latency_budget_s"] == 2.0
    assert llm._get_ls_params(model="other")["ls_model_name"] == "other"


# ---- stop ----------------------------------------------------------------------------


def test_stop_is_honoured(llm, engine):
    text = llm.invoke("x", stop=["answer"])
    assert engine.calls[-1]["stop"] == ["answer"]
    assert "answer" not in text and text.startswith("Target thinks")


def test_default_stop_and_call_stop_together_is_an_error(engine):
    llm = SpecsLLM(engine=engine, stop=["42"])
    assert "42" not in llm.invoke("x")
    with pytest.raises(ConfigError, match="`stop` found in both"):
        llm.invoke("x", stop=["y"])


# ---- streaming -----------------------------------------------------------------------


def test_stream_yields_one_chunk_per_step_then_the_rest(llm):
    counter = TokenCounter()
    chunks = list(llm.stream("q", config={"callbacks": [counter]}))
    assert chunks == ["Target thinks about q.\n\n", "So the answer is 42.\n\n", "#### 42", ""]
    assert "".join(chunks) == llm.invoke("q")
    assert counter.tokens == chunks


def test_last_streamed_chunk_carries_usage_and_stats(llm):
    chunks = list(llm._stream("q"))
    assert all(c.generation_info.keys() == {"steps"} for c in chunks[:-1])
    last = chunks[-1].generation_info
    assert last["token_usage"]["completion_tokens"] == len("".join(c.text for c in chunks))
    assert last["steps_from_draft"] == 2 and not last["budget_exhausted"]
    total = chunks[0]
    for chunk in chunks[1:]:
        total += chunk
    assert [s["text"] for s in total.generation_info["steps"]] == [c.text for c in chunks[:-1]]


async def test_astream_matches_stream(llm):
    counter = TokenCounter()
    chunks = [c async for c in llm.astream("q", config={"callbacks": [counter]})]
    assert chunks == list(llm.stream("q"))
    assert counter.tokens == chunks


# ---- async ---------------------------------------------------------------------------


async def test_ainvoke_does_not_block_the_event_loop():
    llm = SpecsLLM(engine=fake_engine(delay_s=0.05))
    text, ticks = await ticks_during(llm.ainvoke("q"))
    assert text == FULL.format(q="q")
    assert ticks >= 10  # the calls take >= 0.25 s; a blocked loop would tick once


async def test_astream_does_not_block_the_event_loop():
    llm = SpecsLLM(engine=fake_engine(delay_s=0.05))

    async def collect() -> list[str]:
        return [c async for c in llm.astream("q")]

    chunks, ticks = await ticks_during(collect())
    assert "".join(chunks) == FULL.format(q="q") and ticks >= 10


# ---- budgets -------------------------------------------------------------------------


def test_exhausted_budget_returns_the_answer_so_far_flagged():
    # a fake clock: each proposal costs 0.1 s, so the second round no longer fits in 0.15 s
    llm = SpecsLLM(engine=fake_engine(cost_s=0.1), latency_budget_s=0.15)
    gen = llm.generate(["q"]).generations[0][0]
    assert gen.generation_info["budget_exhausted"]
    assert gen.generation_info["stop_reason"] == "latency"
    # target round to 0.1 s, then a draft round (its cost not yet known) to 0.2 s, whose
    # step is kept unscored; nothing starts after the deadline
    assert gen.text == "Target thinks about q.\n\nSo the answer is 42.\n\n"
    assert gen.generation_info["wall_s"] == pytest.approx(0.2)


def test_strict_budget_raises_with_the_partial_result(engine):
    llm = SpecsLLM(engine=engine, max_steps=1, strict_budget=True)
    with pytest.raises(BudgetExhaustedError) as caught:
        llm.invoke("q")
    assert caught.value.result.text == "Target thinks about q.\n\n"
    with pytest.raises(BudgetExhaustedError):
        list(llm.stream("q"))
    assert llm.invoke("q", strict_budget=False) == "Target thinks about q.\n\n"


# ---- concurrency ---------------------------------------------------------------------


def _steps_wanted(i: int) -> int:
    return 1 + i % 3


def _expected(i: int) -> str:
    steps = [f"Target thinks about q{i}.\n\n", "So the answer is 42.\n\n", "#### 42"]
    return "".join(steps[:_steps_wanted(i)])


def test_eight_threads_get_their_own_budget_and_result():
    llm = SpecsLLM(engine=fake_engine(delay_s=0.01))
    barrier = threading.Barrier(8)

    def call(i: int) -> str:
        barrier.wait()
        return llm.invoke(f"q{i}", config={"configurable": {"max_steps": _steps_wanted(i)}})

    with ThreadPoolExecutor(8) as pool:
        texts = list(pool.map(call, range(8)))
    assert texts == [_expected(i) for i in range(8)]


def test_batch_keeps_each_input_config():
    llm = SpecsLLM(engine=fake_engine(delay_s=0.01))
    configs = [{"configurable": {"max_steps": _steps_wanted(i)}, "max_concurrency": 8}
               for i in range(8)]
    assert llm.batch([f"q{i}" for i in range(8)], configs) == [_expected(i) for i in range(8)]


async def test_eight_asyncio_calls_get_their_own_budget_and_result():
    llm = SpecsLLM(engine=fake_engine(delay_s=0.01))
    texts = await asyncio.gather(*(
        llm.ainvoke(f"q{i}", max_steps=_steps_wanted(i)) for i in range(8)))
    assert list(texts) == [_expected(i) for i in range(8)]
    assert await llm.abatch(["q0", "q1"]) == [FULL.format(q="q0"), FULL.format(q="q1")]


# ---- construction from model locations -----------------------------------------------


@pytest.fixture
def counted_loads(monkeypatch):
    return count_loads(monkeypatch)


def test_configured_copies_share_one_load(counted_loads):
    llm = SpecsLLM(draft="d-dir", target="t-dir", reward="r-dir", max_steps=2)
    assert counted_loads == []  # construction loads nothing
    configurable = llm.configurable_fields(
        max_steps=ConfigurableField(id="steps"), n=ConfigurableField(id="n"))
    for steps in (1, 2, 3):
        configurable.invoke("q", config={"configurable": {"steps": steps, "n": 4}})
    SpecsLLM(draft="d-dir", target="t-dir", reward="r-dir").invoke("q")
    assert len(counted_loads) == 1
    assert counted_loads[0]["draft"] == "d-dir" and counted_loads[0]["backend"] is None  # the engine picks


def test_preset_fills_the_three_roles(counted_loads):
    llm = SpecsLLM(preset="qwen2.5-coder")
    assert llm._identifying_params["target_model"] == "qwen2.5-coder-1.5b"
    llm.invoke("q")
    assert counted_loads[0]["draft"] == "qwen2.5-coder-0.5b"


def test_concurrent_first_calls_load_once(counted_loads):
    llm = SpecsLLM(draft="d-dir")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: llm.invoke(f"q{i}", method="greedy", model_role="draft"), range(8)))
    assert len(counted_loads) == 1


# ---- end to end on tiny real transformers models ---------------------------------------


@pytest.fixture
def tiny(tiny_draft_dir, tiny_target_dir, tiny_reward_dir) -> dict:
    return {"draft": str(tiny_draft_dir), "target": str(tiny_target_dir),
            "reward": str(tiny_reward_dir)}


def test_tiny_models_invoke_stream_and_configure_without_reloading(tiny):
    from specs_engine.backends import load_count

    llm = SpecsLLM(**tiny, max_steps=3, max_new_tokens=48, seed=0)
    result = llm.generate(["Ann has 3 apples and buys 4 more. How many apples?"])
    gen = result.generations[0][0]
    info = gen.generation_info
    assert gen.text and info["steps_from_draft"] + info["steps_from_target"] == len(info["steps"])
    assert result.llm_output["token_usage"]["completion_tokens"] == info["completion_tokens"] > 0
    loads = load_count()
    chain = PromptTemplate.from_template("{q}") | llm
    streamed = "".join(chain.stream({"q": "Bob has 5 pens."},
                                    config={"configurable": {"max_steps": 2, "n": 2,
                                                             "beam_width": 2}}))
    again = chain.invoke({"q": "Bob has 5 pens."}, config={"configurable": {
        "max_steps": 2, "n": 2, "beam_width": 2}})
    assert streamed == again  # same seed, same answer, streamed or not
    SpecsLLM(**tiny).invoke("Cara has 2 books.", max_steps=1)
    assert load_count() == loads  # configured copies and new objects reuse the models


def test_tiny_models_concurrent_calls_match_sequential_ones(tiny):
    llm = SpecsLLM(**tiny, max_steps=2, max_new_tokens=24, seed=3)
    prompts = [f"{name} has {i} pens." for i, name in enumerate(["Ann", "Bob", "Cara", "Dev"] * 2)]
    sequential = [llm.invoke(p) for p in prompts]
    with ThreadPoolExecutor(8) as pool:
        threaded = list(pool.map(llm.invoke, prompts))

    async def gathered() -> list[str]:
        return list(await asyncio.gather(*(llm.ainvoke(p) for p in prompts)))

    assert threaded == sequential
    assert asyncio.run(gathered()) == sequential
