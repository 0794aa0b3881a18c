"""SpecsLLM for LlamaIndex: completion/chat, streaming, async, budgets on the instance, and
use inside a RAG query engine and a chat engine (offline MockEmbedding, real LLM calls)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
from tests.helpers.fakes import RecordingEngine, count_loads, fake_engine, ticks_during
from tests.helpers.scripted import ScriptedReward, script_lm
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.callbacks import CallbackManager, CBEventType, LlamaDebugHandler
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import ChatMessage

from specs_engine.errors import ConfigError
from specs_integrations._settings import BudgetExhaustedError
from specs_integrations.llama_index import SpecsLLM

STEPS = ["Target thinks about {q}.\n\n", "So the answer is 42.\n\n", "#### 42"]
DOCS = ["The Blue Cafe opens at 7 am and closes at 3 pm.",
        "The Blue Cafe sells 12 kinds of tea.",
        "The library next door opens at 9 am."]


def full(q: str) -> str:
    return "".join(STEPS).format(q=q)


@pytest.fixture
def engine():
    return fake_engine()


@pytest.fixture
def llm(engine):
    return SpecsLLM(engine=engine, latency_budget_s=30.0)


def test_metadata_reports_the_smallest_real_context_window():
    draft = script_lm("d", STEPS, context_window=2048)
    target = script_lm("t", STEPS, context_window=8192)
    llm = SpecsLLM(engine=RecordingEngine(draft, target, ScriptedReward()), max_new_tokens=200)
    meta = llm.metadata
    assert (meta.context_window, meta.num_output, meta.model_name) == (2048, 200, "t")


def test_complete_returns_text_usage_and_stats(llm):
    response = llm.complete("q")
    assert response.text == full("q")
    usage = response.raw["usage"]
    assert usage["completion_tokens"] == len(response.text)
    assert usage["prompt_tokens"] > 0
    assert response.raw["answer"] == "42" and response.raw["budget_exhausted"] is False
    assert response.raw["steps_from_draft"] == 2 and response.raw["steps_from_target"] == 1


def test_stream_complete_gives_a_delta_per_step(llm):
    responses = list(llm.stream_complete("q"))
    assert [r.delta for r in responses] == [s.format(q="q") for s in STEPS] + [""]
    assert [r.text for r in responses][-2:] == [full("q"), full("q")]
    assert responses[-1].raw["usage"]["completion_tokens"] == len(full("q"))


def test_completion_callbacks_fire(engine):
    debug = LlamaDebugHandler()
    llm = SpecsLLM(engine=engine, callback_manager=CallbackManager([debug]))
    llm.complete("q")
    list(llm.stream_complete("q"))
    assert len(debug.get_event_pairs(CBEventType.LLM)) == 2


def test_chat_goes_through_the_chat_template(llm, engine):
    reply = llm.chat([ChatMessage(role="system", content="be brief"),
                      ChatMessage(role="user", content="hi")])
    assert engine.calls[-1]["prompt"] == [{"role": "system", "content": "be brief"},
                                          {"role": "user", "content": "hi"}]
    assert reply.message.content.endswith("#### 42")
    deltas = [r.delta for r in llm.stream_chat([ChatMessage(role="user", content="hi")])]
    assert "".join(deltas) == full("user: hi")


async def test_async_calls_do_not_block_the_event_loop():
    llm = SpecsLLM(engine=fake_engine(delay_s=0.05))
    hi = [ChatMessage(role="user", content="hi")]

    async def four_calls() -> tuple:
        response = await llm.acomplete("q")
        deltas = [r.delta async for r in await llm.astream_complete("q")]
        reply = await llm.achat(hi)
        chat_deltas = [r.delta async for r in await llm.astream_chat(hi)]
        return response, deltas, reply, chat_deltas

    (response, deltas, reply, chat_deltas), ticks = await ticks_during(four_calls())
    assert response.text == full("q") and "".join(deltas) == full("q")
    assert reply.message.content == full("user: hi") == "".join(chat_deltas)
    assert ticks >= 30  # four calls of >= 0.25 s each; a blocked loop would barely tick


# ---- budgets ---------------------------------------------------------------------------


def test_with_budget_is_a_cheap_copy_sharing_the_engine(llm, engine):
    quick = llm.with_budget(latency_budget_s=2.0, max_steps=1)
    assert quick.get_engine() is llm.get_engine() is engine
    assert (quick.latency_budget_s, llm.latency_budget_s) == (2.0, 30.0)
    response = quick.complete("q")
    assert response.text == STEPS[0].format(q="q")
    assert response.raw["budget_exhausted"] is True  # the answer so far, no exception
    assert engine.calls[-1]["budget"].latency_s == 2.0


def test_with_budget_refuses_bad_settings_by_name(llm):
    with pytest.raises(ConfigError, match="unknown setting.*'latency'"):
        llm.with_budget(latency=2.0)
    with pytest.raises(ConfigError, match="latency_budget_s='2'"):
        llm.with_budget(latency_budget_s="2")
    with pytest.raises(ConfigError, match="beam_width"):
        llm.with_budget(n=6)  # beam_width 4 does not divide 6


def test_per_call_settings_and_strictness(llm, engine):
    assert llm.complete("q", max_steps=2).text == "".join(STEPS[:2]).format(q="q")
    with pytest.raises(BudgetExhaustedError) as caught:
        llm.with_budget(strict_budget=True).complete("q", max_steps=1)
    assert caught.value.result.text == STEPS[0].format(q="q")
    with pytest.raises(BudgetExhaustedError):
        list(llm.with_budget(strict_budget=True, max_steps=1).stream_complete("q"))


def test_latency_budget_returns_the_answer_so_far():
    # a fake clock: each proposal costs 0.1 s, so the second round no longer fits in 0.15 s
    llm = SpecsLLM(engine=fake_engine(cost_s=0.1), latency_budget_s=0.15)
    response = llm.complete("q")
    assert response.raw["budget_exhausted"] and response.raw["stop_reason"] == "latency"
    assert response.text == "Target thinks about q.\n\nSo the answer is 42.\n\n"  # as in LangChain
    assert response.raw["wall_s"] == pytest.approx(0.2)


def test_copies_and_new_instances_load_once(monkeypatch):
    loads = count_loads(monkeypatch)
    llm = SpecsLLM(draft="d-dir", target="t-dir", reward="r-dir")
    for seconds in (1.0, 2.0, 3.0):
        llm.with_budget(latency_budget_s=seconds).complete("q")
    SpecsLLM(draft="d-dir", target="t-dir", reward="r-dir").complete("q")
    assert len(loads) == 1


def test_eight_threads_and_eight_tasks_get_their_own_results():
    llm = SpecsLLM(engine=fake_engine(delay_s=0.01))
    with ThreadPoolExecutor(8) as pool:
        texts = list(pool.map(lambda i: llm.complete(f"q{i}", max_steps=1 + i % 3).text, range(8)))
    assert texts == ["".join(STEPS[:1 + i % 3]).format(q=f"q{i}") for i in range(8)]

    async def many() -> list[str]:
        responses = await asyncio.gather(*(llm.acomplete(f"q{i}") for i in range(8)))
        return [r.text for r in responses]

    assert asyncio.run(many()) == [full(f"q{i}") for i in range(8)]


# ---- inside LlamaIndex's own engines -----------------------------------------------------


def _index() -> VectorStoreIndex:
    return VectorStoreIndex.from_documents([Document(text=t) for t in DOCS],
                                           embed_model=MockEmbedding(embed_dim=8))


@pytest.mark.parametrize("is_chat_model", [True, False])
def test_streaming_rag_query_engine(engine, is_chat_model):
    llm = SpecsLLM(engine=engine, is_chat_model=is_chat_model)
    response = _index().as_query_engine(llm=llm, streaming=True, similarity_top_k=2).query(
        "When does the Blue Cafe open?")
    deltas = list(response.response_gen)
    assert len(deltas) >= 3 and "".join(deltas).endswith("#### 42")
    prompt = engine.calls[-1]["prompt"]
    if is_chat_model:  # chat messages, for the models' own chat template
        assert prompt[-1]["role"] == "user"
        prompt = prompt[-1]["content"]
    assert "When does the Blue Cafe open?" in prompt
    assert len(response.source_nodes) == 2
    assert all(node.get_content() in prompt for node in response.source_nodes)


def test_chat_engine(llm, engine):
    chat_engine = _index().as_chat_engine(llm=llm, chat_mode="condense_plus_context")
    first = chat_engine.chat("When does the Blue Cafe open?")
    second = chat_engine.chat("And when does it close?")
    assert first.response.endswith("#### 42") and second.response.endswith("#### 42")
    chats = [call["prompt"] for call in engine.calls if isinstance(call["prompt"], list)]
    assert len(chats) == 2  # (the condense step in between is a plain completion)
    messages = chats[-1]
    assert "opens at" in messages[0]["content"]  # the retrieved context
    assert messages[-1]["role"] == "user" and "close" in messages[-1]["content"]
    assert any(m["role"] == "assistant" for m in messages)  # the history went in


# ---- end to end on tiny real transformers models ---------------------------------------


@pytest.fixture
def tiny_llm(tiny_draft_dir, tiny_target_dir, tiny_reward_dir) -> SpecsLLM:
    return SpecsLLM(draft=str(tiny_draft_dir), target=str(tiny_target_dir),
                    reward=str(tiny_reward_dir), max_steps=2, max_new_tokens=32, seed=2)


def test_tiny_models_complete_stream_and_budget_copies(tiny_llm):
    from specs_engine.backends import load_count

    assert tiny_llm.metadata.context_window == 2048  # the tiny models' max positions
    response = tiny_llm.complete("Bob has 4 pens and buys 3 more.")
    assert response.raw["usage"]["completion_tokens"] > 0
    loads = load_count()
    deltas = [r.delta for r in tiny_llm.with_budget(max_steps=1).stream_complete("Bob has 4 pens.")]
    assert len(deltas) >= 1 and deltas[-1] is not None
    assert asyncio.run(tiny_llm.acomplete("Bob has 4 pens and buys 3 more.")).text == response.text
    assert load_count() == loads


@pytest.mark.parametrize("is_chat_model", [True, False])
def test_tiny_models_in_rag_query_and_chat_engines(tiny_llm, is_chat_model):
    llm = tiny_llm.model_copy(update={"is_chat_model": is_chat_model})
    response = _index().as_query_engine(llm=llm, streaming=True).query("When does it open?")
    assert "".join(response.response_gen)
    chat_engine = _index().as_chat_engine(llm=llm, chat_mode="condense_plus_context")
    assert chat_engine.chat("When does it open?").response
