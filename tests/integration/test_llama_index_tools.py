"""SpecsLLM as a LlamaIndex FunctionCallingLLM: tool calls, structured_predict, stop, and
a real FunctionAgent / AgentWorkflow round trip on a scripted model."""

from __future__ import annotations

import pytest
from tests.helpers.agent_scripts import agent_engine, call_text
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from pydantic import BaseModel

from specs_engine.errors import ConfigError
from specs_integrations.llama_index import SpecsLLM

ANSWER = "6 times 7 is 42."


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


MULTIPLY = FunctionTool.from_defaults(fn=multiply)
CALL = call_text("multiply", {"a": 6, "b": 7})
BAD = call_text("multiply", {"a": "six", "b": 7})


class Product(BaseModel):
    """The product of two numbers."""

    value: int


def llm_with(call=CALL, answer: str = ANSWER) -> SpecsLLM:
    return SpecsLLM(engine=agent_engine(call, answer), max_steps=4)


def test_specs_llm_is_a_function_calling_llm():
    llm = llm_with()
    assert isinstance(llm, FunctionCallingLLM) and llm.metadata.is_function_calling_model


def test_chat_with_tools_returns_a_tool_selection_and_the_tools_reach_the_prompt():
    llm = llm_with()
    response = llm.chat_with_tools([MULTIPLY], user_msg="What is 6 times 7?")
    [selection] = llm.get_tool_calls_from_response(response)
    assert (selection.tool_name, selection.tool_kwargs) == ("multiply", {"a": 6, "b": 7})
    assert response.message.content == "" and response.raw["structure_valid"] is True
    system = llm.engine.calls[-1]["prompt"][0]["content"]
    assert "# Tools" in system and '"name": "multiply"' in system


def test_predict_and_call_runs_the_tool():
    assert llm_with().predict_and_call([MULTIPLY], user_msg="What is 6 times 7?").response == "42"


def test_a_malformed_call_is_reported_invalid_and_never_selected():
    llm = llm_with(call=BAD)
    response = llm.chat_with_tools([MULTIPLY], user_msg="6*7?", tool_required=True)
    assert response.message.additional_kwargs["tool_calls"] == []
    assert response.raw["structure_valid"] is False
    with pytest.raises(ValueError, match="arguments fail the schema of 'multiply'"):
        llm.get_tool_calls_from_response(response)


def test_streamed_tool_calls_arrive_on_the_last_response():
    llm = llm_with()
    responses = list(llm.stream_chat_with_tools([MULTIPLY], user_msg="What is 6 times 7?"))
    assert [c.tool_name for c in llm.get_tool_calls_from_response(responses[-1])] == ["multiply"]
    assert all(r.message.content == "" for r in responses)


def test_structured_predict_returns_the_schema_object():
    llm = llm_with(call=call_text("Product", {"value": 42}))
    out = llm.structured_predict(Product, PromptTemplate("What is {q}?"), q="6 times 7")
    assert out == Product(value=42)


def test_complete_honours_stop():
    llm = llm_with(call="The answer is 42. Done.")
    assert llm.complete("q", stop=[" Done"]).text == "The answer is 42."


def test_a_tool_choice_naming_no_bound_tool_is_refused():
    with pytest.raises(ConfigError, match=r"tool_choice='divide'.*bound: multiply"):
        llm_with().chat_with_tools([MULTIPLY], user_msg="q", tool_choice="divide")


async def test_function_agent_completes_a_tool_round_trip():
    from llama_index.core.agent.workflow import FunctionAgent

    llm = llm_with()
    agent = FunctionAgent(tools=[MULTIPLY], llm=llm, system_prompt="Use the tools.")
    output = await agent.run(user_msg="What is 6 times 7?")
    assert str(output) == ANSWER
    assert [c.tool_name for c in output.tool_calls] == ["multiply"]
    prompt = llm.engine.calls[-1]["prompt"]
    assert prompt[-1] == {"role": "user", "content": "<tool_response>\n42\n</tool_response>"}
    assert prompt[-2] == {"role": "assistant", "content": CALL}


async def test_agent_workflow_runs_with_specs_llm():
    from llama_index.core.agent.workflow import AgentWorkflow

    workflow = AgentWorkflow.from_tools_or_functions([multiply], llm=llm_with())
    assert str(await workflow.run(user_msg="What is 6 times 7?")) == ANSWER


def test_assistant_history_from_other_llms_renders_as_calls():
    from specs_integrations.llama_index import chat_prompt

    message = ChatMessage(role="assistant", content="", additional_kwargs={"tool_calls": [
        {"id": "1", "type": "function", "function": {"name": "multiply", "arguments": '{"a": 6, "b": 7}'}}]})
    assert chat_prompt([message]) == [{"role": "assistant", "content": "", "tool_calls": [
        {"name": "multiply", "arguments": {"a": 6, "b": 7}}]}]


def test_an_unclosed_call_comes_back_invalid_in_additional_kwargs():
    """A reply cut inside <tool_call> (a budget cut) carries no call to run; the cut call
    is listed as invalid, as ChatSpecs lists it in invalid_tool_calls."""
    from specs_engine.result import SearchResult, Stats
    from specs_integrations._tools import ToolBinding
    from specs_integrations.llama_index import response

    tool = {"type": "function", "function": {"name": "multiply", "parameters": {
        "type": "object", "properties": {"a": {"type": "integer"}}}}}
    text = 'Let me call it.\n<tool_call>\n{"name": "multi'
    result = SearchResult(text=text, answer=None, steps=[], stats=Stats(), method="specs",
                          finished=False, budget_exhausted=True, stop_reason="latency",
                          candidates_considered=1)
    out = response(result, binding=ToolBinding.for_tools([tool]))
    assert out.text == "Let me call it.\n"
    assert out.additional_kwargs["tool_calls"] == []
    [invalid] = out.additional_kwargs["invalid_tool_calls"]
    assert invalid["text"] == '<tool_call>\n{"name": "multi' and invalid["name"] is None
    assert invalid["error"].startswith("the answer ended inside an unclosed <tool_call>")
    assert out.raw["structure_valid"] is False
