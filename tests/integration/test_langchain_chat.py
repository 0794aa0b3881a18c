"""ChatSpecs (LangChain BaseChatModel): messages, replies, streaming, budgets, the standard
unit-test suite. Fake models for the logic; tiny real models for the suite and end to end."""

from __future__ import annotations

import asyncio

import pytest
from tests.helpers.fakes import fake_engine
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.prompts import ChatPromptTemplate
from langchain_tests.unit_tests import ChatModelUnitTests

from specs_engine.errors import ConfigError
from specs_integrations.langchain import BudgetExhaustedError, ChatSpecs
from specs_integrations.langchain.chat_models import to_chat_prompt

STEPS = ["Target thinks about user: hi.\n\n", "So the answer is 42.\n\n", "#### 42"]


@pytest.fixture
def engine():
    return fake_engine()


@pytest.fixture
def chat(engine):
    return ChatSpecs(engine=engine, latency_budget_s=30.0)


def test_messages_become_chat_template_dicts():
    messages = [SystemMessage("be brief"), HumanMessage("hi"), AIMessage("hello"),
                ChatMessage(role="critic", content="check"),
                ToolMessage("3", tool_call_id="t1"),
                HumanMessage(content=[{"type": "text", "text": "and "}, "more"])]
    assert to_chat_prompt(messages) == [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"}, {"role": "critic", "content": "check"},
        {"role": "tool", "content": "3"}, {"role": "user", "content": "and more"}]


def test_non_text_content_is_refused_by_name():
    image = HumanMessage(content=[{"type": "image_url", "image_url": {"url": "x"}}])
    with pytest.raises(ConfigError, match="non-text block"):
        to_chat_prompt([image])


def test_invoke_sends_messages_and_returns_reply_with_usage_and_stats(chat, engine):
    reply = chat.invoke([("system", "be brief"), ("human", "hi")])
    assert engine.calls[-1]["prompt"] == [{"role": "system", "content": "be brief"},
                                          {"role": "user", "content": "hi"}]
    assert isinstance(reply, AIMessage)
    assert reply.content.endswith("#### 42")
    assert reply.usage_metadata["output_tokens"] == len(reply.content)
    assert reply.usage_metadata["total_tokens"] == (
        reply.usage_metadata["input_tokens"] + reply.usage_metadata["output_tokens"])
    meta = reply.response_metadata
    assert meta["answer"] == "42" and meta["finish_reason"] == "stop"
    assert meta["model_name"] == "fake-target" and meta["steps_from_draft"] == 2
    assert [s["source"] for s in meta["steps"]] == ["target", "draft", "draft"]


def test_stream_gives_a_chunk_per_step_and_usage_last(chat):
    chunks = list(chat.stream("hi"))
    assert [c.content for c in chunks] == [*STEPS, ""]
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    assert all(c.usage_metadata is None for c in chunks[:-1])
    assert chunks[-1].usage_metadata["output_tokens"] == len("".join(STEPS))
    assert chunks[-1].chunk_position == "last"
    total = chunks[0]
    for chunk in chunks[1:]:
        total += chunk
    assert total.content == "".join(STEPS)
    assert [s["text"] for s in total.response_metadata["steps"]] == STEPS
    assert total.response_metadata["budget_exhausted"] is False


async def test_async_paths_match_the_sync_ones(chat):
    reply = await chat.ainvoke("hi")
    assert reply.content == "".join(STEPS)
    assert [c.content async for c in chat.astream("hi")] == [*STEPS, ""]


def test_configurable_and_bind_reach_a_chat_chain(chat, engine):
    chain = ChatPromptTemplate.from_messages([("human", "{q}")]) | chat
    reply = chain.invoke({"q": "hi"}, config={"configurable": {"specs_max_steps": 1}})
    assert reply.content == STEPS[0]
    assert reply.response_metadata["budget_exhausted"] is True
    chat.bind(n=8, beam_width=2).invoke("hi", config={"configurable": {"n": 2}})
    assert (engine.calls[-1]["config"].n, engine.calls[-1]["config"].beam_width) == (8, 2)


def test_strict_budget_raises(chat):
    with pytest.raises(BudgetExhaustedError) as caught:
        chat.invoke("hi", max_steps=1, strict_budget=True)
    assert caught.value.result.text == STEPS[0]


def test_stop_is_honoured(chat):
    assert "answer" not in chat.invoke("hi", stop=["answer"]).content


async def test_eight_asyncio_chat_calls_get_their_own_results():
    chat = ChatSpecs(engine=fake_engine(delay_s=0.01))
    replies = await asyncio.gather(*(chat.ainvoke(f"q{i}", max_steps=1 + i % 2) for i in range(8)))
    for i, reply in enumerate(replies):
        assert reply.content.startswith(f"Target thinks about user: q{i}.")
        assert len(reply.response_metadata["steps"]) == 1 + i % 2


def test_ls_params_are_chat_params(chat):
    ls = chat._get_ls_params(stop=["x"])
    assert ls["ls_model_type"] == "chat" and ls["ls_provider"] == "specs"
    assert ls["ls_stop"] == ["x"]


# ---- LangChain's standard unit-test suite, on tiny real models --------------------------


class TestChatSpecsStandard(ChatModelUnitTests):
    """Constructed from model locations alone, as generic code constructs chat models."""

    dirs: dict = {}

    @pytest.fixture(autouse=True)
    def _tiny_models(self, tiny_draft_dir, tiny_target_dir, tiny_reward_dir):
        type(self).dirs = {"draft": str(tiny_draft_dir), "target": str(tiny_target_dir),
                           "reward": str(tiny_reward_dir)}

    @property
    def chat_model_class(self) -> type[ChatSpecs]:
        return ChatSpecs

    @property
    def chat_model_params(self) -> dict:
        # The suite's default temperature=0 applies: greedy proposals, one per step.
        return {**self.dirs, "max_steps": 2, "latency_budget_s": 5.0}

    @property
    def init_from_env_params(self) -> tuple[dict, dict, dict]:
        env = {"SPECS_DRAFT": self.dirs["draft"], "SPECS_TARGET": self.dirs["target"],
               "SPECS_REWARD": self.dirs["reward"]}
        return env, {"max_steps": 2}, self.dirs

    @property
    def has_tool_calling(self) -> bool:
        return True

    @property
    def has_structured_output(self) -> bool:
        return True

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        return False


def test_serialisation_is_declined_not_faked(chat):
    """ChatSpecs holds live models, so it declares itself not serialisable (the standard
    suite's test_serdes skips on that declaration) and dumpd gives the 'not_implemented'
    record instead of something that would load without its models."""
    from langchain_core.load import dumpd

    assert not ChatSpecs.is_lc_serializable()
    assert dumpd(chat)["type"] == "not_implemented"


# ---- end to end on tiny real transformers models ---------------------------------------


def test_tiny_models_chat_invoke_and_stream(tiny_draft_dir, tiny_target_dir, tiny_reward_dir):
    chat = ChatSpecs(draft=str(tiny_draft_dir), target=str(tiny_target_dir),
                     reward=str(tiny_reward_dir), max_steps=2, max_new_tokens=32, seed=1)
    messages = [("system", "Answer with a number."), ("human", "Ann has 3 apples. How many?")]
    reply = chat.invoke(messages)
    assert reply.usage_metadata["output_tokens"] == reply.response_metadata["completion_tokens"]
    assert reply.usage_metadata["input_tokens"] > 10  # the chat template's tokens count too
    chunks = list(chat.stream(messages))
    assert "".join(c.content for c in chunks) == reply.content  # same seed, same reply
    assert chunks[-1].usage_metadata == reply.usage_metadata
    streamed_steps = [s["text"] for c in chunks for s in c.response_metadata["steps"]]
    assert streamed_steps == [s["text"] for s in reply.response_metadata["steps"]]
