"""Tools and structured output end to end on tiny random-init transformers models.

They cannot write a valid call: what is checked is that the search rejects and counts the
candidates that break the required structure, and that the answer is flagged, never a
malformed call returned as a valid one."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool
from pydantic import BaseModel

from specs_integrations.langchain import ChatSpecs


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


class Product(BaseModel):
    value: int


@pytest.fixture
def models(tiny_draft_dir, tiny_target_dir, tiny_reward_dir) -> dict:
    return {"draft": str(tiny_draft_dir), "target": str(tiny_target_dir),
            "reward": str(tiny_reward_dir)}


def test_a_required_call_the_tiny_models_cannot_write_is_flagged_not_faked(models):
    chat = ChatSpecs(**models, max_steps=3, max_new_tokens=48, n=4, beam_width=2, seed=0)
    reply = chat.bind_tools([multiply], tool_choice="any").invoke("What is 6 times 7?")
    meta = reply.response_metadata
    assert reply.tool_calls == []
    assert meta["structure_valid"] is False
    assert meta["candidates_rejected_structure"] >= 1  # answers without a call were dropped
    assert meta["candidates_considered"] > meta["candidates_rejected_structure"]


def test_structured_output_on_tiny_models_reports_the_parsing_failure(models):
    chat = ChatSpecs(**models, max_steps=2, max_new_tokens=32, seed=1)
    out = chat.with_structured_output(Product, method="json_schema", include_raw=True).invoke("6*7?")
    assert out["parsed"] is None and out["parsing_error"] is not None
    assert out["raw"].response_metadata["structure_valid"] is False


def test_token_counts_come_from_the_models_own_tokenizer_and_template(models):
    chat = ChatSpecs(**models)
    messages = [HumanMessage("What is 6 times 7?")]
    plain = chat.get_num_tokens_from_messages(messages)
    assert plain == len(chat.get_engine().target.encode_prompt(
        [{"role": "user", "content": "What is 6 times 7?"}]))
    assert chat.get_num_tokens_from_messages(messages, tools=[multiply]) > plain + 20
    assert chat.get_num_tokens("What is 6 times 7?") == len(chat.get_token_ids("What is 6 times 7?"))


async def test_function_agent_on_tiny_models_ends_with_a_text_answer(models):
    """tool_choice auto: a text answer is valid, so the agent finishes without a call."""
    from llama_index.core.agent.workflow import FunctionAgent
    from llama_index.core.tools import FunctionTool

    from specs_integrations.llama_index import SpecsLLM

    llm = SpecsLLM(**models, max_steps=2, max_new_tokens=32, seed=2)
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(fn=lambda a, b: a * b, name="multiply")],
                          llm=llm)
    output = await agent.run(user_msg="What is 6 times 7?")
    assert output.tool_calls == [] and isinstance(str(output), str)
    required = llm.chat_with_tools([FunctionTool.from_defaults(fn=lambda a, b: a * b, name="multiply")],
                                   user_msg="6*7?", tool_required=True)
    assert required.raw["structure_valid"] is False
    with pytest.raises(ValueError, match="expected at least one tool call"):
        llm.get_tool_calls_from_response(required)
