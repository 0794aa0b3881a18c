"""ChatSpecs with tools and structured output: binding, replies, streaming, the tool turn
round trip, bad input, and real LangGraph / LangChain agents on a scripted model."""

from __future__ import annotations

import pytest
from tests.helpers.agent_scripts import agent_engine, call_text
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel
from typing_extensions import TypedDict

from specs_engine.errors import ConfigError
from specs_integrations.langchain import ChatSpecs

CALL = call_text("multiply", {"a": 6, "b": 7})
BAD = call_text("multiply", {"a": "six", "b": 7})
ANSWER = "6 times 7 is 42."


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


@tool
def lookup(key: str) -> str:
    """Look a key up in a small table."""
    return {"pi": "3.14"}.get(key, "unknown")


class Product(BaseModel):
    """The product of two numbers."""

    value: int


def chat_with(call: str = CALL, answer: str = ANSWER, **kwargs) -> ChatSpecs:
    return ChatSpecs(engine=agent_engine(call, answer, **kwargs), max_steps=4)


def test_a_bound_tool_call_comes_back_as_tool_calls():
    chat = chat_with()
    reply = chat.bind_tools([multiply, lookup]).invoke("What is 6 times 7?")
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [("multiply", {"a": 6, "b": 7})]
    assert reply.tool_calls[0]["id"].startswith("call_") and reply.content == ""
    assert reply.invalid_tool_calls == []
    meta = reply.response_metadata
    assert meta["finish_reason"] == "tool_calls" and meta["structure_valid"] is True
    system = chat.engine.calls[-1]["prompt"][0]
    assert system["role"] == "system" and "# Tools" in system["content"]
    assert '"name": "multiply"' in system["content"] and '"name": "lookup"' in system["content"]
    assert chat.engine.calls[-1]["config"].structure.tool_choice == "auto"


@pytest.mark.parametrize("entry", ["invoke", "stream"])
def test_a_call_reads_its_tool_binding_once(monkeypatch, entry):
    """Reading a binding builds every tool's JSON-schema validator: once per call serves
    the prompt, the search's check and the reply."""
    from specs_integrations._tools import ToolBinding

    bound = chat_with().bind_tools([multiply, lookup])  # bind_tools reads it once to check it
    built, for_tools = [], ToolBinding.for_tools.__func__

    def counted(cls, *args):
        built.append(args)
        return for_tools(cls, *args)

    monkeypatch.setattr(ToolBinding, "for_tools", classmethod(counted))
    question = "What is 6 times 7?"
    reply = bound.invoke(question) if entry == "invoke" else list(bound.stream(question))[-1]
    assert reply.tool_calls[0]["name"] == "multiply" and len(built) == 1


def test_tool_turns_round_trip_into_the_next_prompt():
    chat = chat_with()
    first = chat.bind_tools([multiply]).invoke("What is 6 times 7?")
    result = multiply.invoke(first.tool_calls[0])
    assert isinstance(result, ToolMessage) and result.content == "42"
    reply = chat.bind_tools([multiply]).invoke([HumanMessage("What is 6 times 7?"), first, result])
    assert reply.content == ANSWER and reply.tool_calls == []
    prompt = chat.engine.calls[-1]["prompt"]
    assert prompt[2] == {"role": "assistant", "content": CALL}
    assert prompt[3] == {"role": "user", "content": "<tool_response>\n42\n</tool_response>"}


def test_a_malformed_call_is_returned_as_invalid_never_as_a_call():
    """Draft and target both write a call that fails the schema: the target is the last
    resort, and its call comes back invalid and flagged."""
    chat = chat_with(call=BAD)
    reply = chat.bind_tools([multiply], tool_choice="any").invoke("What is 6 times 7?")
    assert reply.tool_calls == []
    assert "arguments fail the schema of 'multiply'" in reply.invalid_tool_calls[0]["error"]
    assert reply.response_metadata["structure_valid"] is False


def test_a_malformed_draft_call_defers_to_the_target_in_a_multi_step_answer():
    thought = "First I think.\n\n"
    chat = ChatSpecs(engine=agent_engine([thought, CALL], ANSWER, draft_call=[thought, BAD]),
                     max_steps=4)
    reply = chat.bind_tools([multiply]).invoke("What is 6 times 7?")
    assert [c["args"] for c in reply.tool_calls] == [{"a": 6, "b": 7}]
    meta = reply.response_metadata
    assert meta["candidates_rejected_structure"] >= 1 and meta["draft_rounds_rejected"] >= 1
    assert [s["source"] for s in meta["steps"]] == ["target", "target"]


def test_streaming_yields_tool_call_chunks_last():
    chunks = list(chat_with().bind_tools([multiply]).stream("What is 6 times 7?"))
    assert all(not c.tool_call_chunks for c in chunks[:-1])
    assert "".join(c.content for c in chunks) == ""  # the call is not text
    total = chunks[0]
    for chunk in chunks[1:]:
        total += chunk
    assert [(c["name"], c["args"]) for c in total.tool_calls] == [("multiply", {"a": 6, "b": 7})]


def test_tool_choice_none_rejects_calls_and_prompts_for_text():
    chat = chat_with(call=CALL)
    reply = chat.bind_tools([multiply], tool_choice="none").invoke("What is 6 times 7?")
    assert reply.tool_calls == [] and reply.response_metadata["structure_valid"] is False
    assert reply.invalid_tool_calls[0]["error"] == "breaks tool_choice='none'"
    assert "Do not call any function" in chat.engine.calls[-1]["prompt"][0]["content"]


def test_bad_tools_and_tool_choice_are_refused_by_name():
    chat = chat_with()
    with pytest.raises(ConfigError, match=r"tool_choice='divide'.*bound: multiply, lookup"):
        chat.bind_tools([multiply, lookup], tool_choice="divide")
    with pytest.raises(ConfigError, match="tool 'not_a_tool' cannot be converted"):
        chat.bind_tools(["not_a_tool"])
    with pytest.raises(ConfigError, match="method='xml' is not allowed"):
        chat.with_structured_output(Product, method="xml")


@pytest.mark.parametrize("method", ["function_calling", "json_schema"])
def test_structured_output_with_a_pydantic_class(method):
    text = call_text("Product", {"value": 42}) if method == "function_calling" else '{"value": 42}'
    chat = chat_with(call=text)
    assert chat.with_structured_output(Product, method=method).invoke("6*7?") == Product(value=42)


def test_structured_output_with_a_typed_dict_and_a_json_schema_dict():
    class Pair(TypedDict):
        """Two numbers."""

        a: int
        b: int

    chat = chat_with(call=call_text("Pair", {"a": 1, "b": 2}))
    assert chat.with_structured_output(Pair).invoke("two numbers") == {"a": 1, "b": 2}
    schema = {"title": "pair", "type": "object", "properties": {"a": {"type": "integer"}},
              "required": ["a"]}
    chat = chat_with(call='{"a": 5}')
    assert chat.with_structured_output(schema, method="json_schema").invoke("a?") == {"a": 5}
    assert chat.with_structured_output(None, method="json_mode").invoke("a?") == {"a": 5}


def test_structured_output_include_raw_keeps_the_failure():
    chat = chat_with(call='{"value": "forty-two"}')
    out = chat.with_structured_output(Product, method="json_schema", include_raw=True).invoke("6*7?")
    assert out["parsed"] is None and out["parsing_error"] is not None
    assert out["raw"].response_metadata["structure_valid"] is False


# ---- real agents on the scripted model ---------------------------------------------------


def test_langgraph_create_react_agent_completes_a_tool_round_trip():
    from langgraph.prebuilt import create_react_agent

    agent = create_react_agent(chat_with(), [multiply])
    messages = agent.invoke({"messages": [HumanMessage("What is 6 times 7?")]})["messages"]
    assert [m.type for m in messages] == ["human", "ai", "tool", "ai"]
    assert messages[2].content == "42" and messages[3].content == ANSWER


def test_langchain_create_agent_completes_a_tool_round_trip():
    from langchain.agents import create_agent

    agent = create_agent(chat_with(), [multiply, lookup])
    messages = agent.invoke({"messages": [HumanMessage("What is 6 times 7?")]},
                            {"configurable": {"latency_budget_s": 30.0}})["messages"]
    assert isinstance(messages[1], AIMessage) and messages[1].tool_calls[0]["name"] == "multiply"
    assert messages[2].content == "42" and messages[-1].content == ANSWER


def test_a_call_cut_by_the_budget_comes_back_invalid_and_flagged():
    chat = ChatSpecs(engine=agent_engine(CALL, ANSWER), max_new_tokens=20)
    reply = chat.bind_tools([multiply]).invoke("What is 6 times 7?")
    assert reply.tool_calls == [] and reply.response_metadata["budget_exhausted"] is True
    [invalid] = reply.invalid_tool_calls
    assert invalid["error"].startswith("the answer ended inside an unclosed <tool_call>")
    assert invalid["args"] == CALL[:20] and reply.response_metadata["structure_valid"] is False


def test_an_openai_style_response_format_is_checked_against_its_schema():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    chat = chat_with(call='{"a": "five"}')
    reply = chat.bind(response_format={"type": "json_schema",
                                       "json_schema": {"name": "a", "schema": schema}}).invoke("a?")
    assert reply.response_metadata["structure_valid"] is False


def test_a_bare_call_object_streams_no_text_and_arrives_as_a_call():
    bare = '{"name": "multiply", "arguments": {"a": 6, "b": 7}}'
    chat = chat_with(call=bare)
    assert chat.bind_tools([multiply]).invoke("6*7?").tool_calls[0]["args"] == {"a": 6, "b": 7}
    chunks = list(chat.bind_tools([multiply]).stream("6*7?"))
    assert "".join(c.content for c in chunks) == ""
    assert [c["name"] for c in chunks[-1].tool_call_chunks] == ["multiply"]
    text = list(chat_with(call='{"note": 1}').bind_tools([multiply]).stream("6*7?"))
    assert "".join(c.content for c in text) == '{"note": 1}'  # held back, then sent whole


def test_a_bare_call_cut_by_the_budget_comes_back_invalid_not_as_text():
    bare = '{"name": "multiply", "arguments": {"a": 6, "b": 7}}'
    reply = ChatSpecs(engine=agent_engine(bare, ANSWER), max_new_tokens=20).bind_tools(
        [multiply]).invoke("6*7?")
    assert reply.content == "" and reply.tool_calls == []
    assert reply.invalid_tool_calls[0]["args"] == bare[:20]
