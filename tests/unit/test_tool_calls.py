"""Structural verification of tool calls and JSON replies: parsing, the tool_choice rules,
the prompt rendering, and the search hook, checked exactly on scripted models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.scripted import ScriptedLM, ScriptedReward
from specs_engine import Budget, SpecsConfig, SpecsEngine
from specs_engine.errors import ConfigError
from specs_engine.tool_calls import StructureCheck, ToolSpec, parse_tool_calls
from specs_engine.tool_prompt import render_messages, tools_section

MULTIPLY = ToolSpec("multiply", {"type": "object", "properties": {"a": {"type": "integer"},
                                 "b": {"type": "integer"}}, "required": ["a", "b"]},
                    "Multiply two integers.")
LOOKUP = ToolSpec("lookup", {"type": "object", "properties": {"key": {"type": "string"}},
                             "required": ["key"]})
TOOLS = (MULTIPLY, LOOKUP)


def call(name: str, arguments) -> str:
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


GOOD = call("multiply", {"a": 6, "b": 7})
BAD_ARGS = call("multiply", {"a": "six"})
UNKNOWN = call("divide", {"a": 6, "b": 7})


# ---- parsing ----------------------------------------------------------------------


def test_a_valid_call_parses_with_its_arguments_and_the_text_around_it():
    reply = parse_tool_calls(f"Let me multiply.\n{GOOD}", TOOLS)
    assert [(c.name, c.arguments) for c in reply.calls] == [("multiply", {"a": 6, "b": 7})]
    assert reply.content == "Let me multiply.\n" and not reply.invalid and not reply.pending


@pytest.mark.parametrize("text, error", [
    ("<tool_call>\n{\"name\": \"multiply\", \"arguments\": {\"a\": 6,}}\n</tool_call>", "not JSON"),
    (UNKNOWN, "unknown tool 'divide'; bound tools: multiply, lookup"),
    (BAD_ARGS, "arguments fail the schema of 'multiply'"),
    ("<tool_call>[1, 2]</tool_call>", '{"name": ..., "arguments": {...}}'),
    (call("multiply", {"a": 6, "b": 7, "type": "object"}),
     "undeclared argument(s) ['type']; 'multiply' takes ['a', 'b']"),
])
def test_malformed_calls_are_invalid_with_the_reason(text, error):
    reply = parse_tool_calls(text, TOOLS)
    assert not reply.calls and len(reply.invalid) == 1
    assert error in reply.invalid[0].error


def test_a_reply_that_is_only_a_call_object_is_a_call_even_without_tags():
    bare = parse_tool_calls('{"name": "multiply", "arguments": {"a": 6, "b": 7}}', TOOLS)
    assert [c.name for c in bare.calls] == ["multiply"] and bare.content == ""
    fenced = parse_tool_calls('```json\n{"name": "divide", "arguments": {}}\n```', TOOLS)
    assert not fenced.calls and "unknown tool 'divide'" in fenced.invalid[0].error
    after = parse_tool_calls('So:\n{"name": "multiply", "arguments": {"a": 6, "b": 7}}\n', TOOLS)
    assert [c.name for c in after.calls] == ["multiply"] and after.content == "So:\n"
    wrong = parse_tool_calls('So:\n\n{"name": "7 pens", "arguments": {"n": 7}}', TOOLS)
    assert "unknown tool '7 pens'" in wrong.invalid[0].error  # the real 1.5B wrote this
    prose = parse_tool_calls('Use {"name": "multiply", "arguments": {}} to multiply.', TOOLS)
    assert not prose.calls and not prose.invalid  # prose goes on after it: plain text
    assert StructureCheck(TOOLS).verdict('{"name": "multiply", "arguments": {"a": 1}}', "eos") == "invalid"
    cut = '{"name": "multiply", "argum'  # what the real preset returned at a budget cut
    assert parse_tool_calls(cut, TOOLS).pending
    assert StructureCheck(TOOLS).verdict(cut, "length") == "continue"
    assert StructureCheck(TOOLS).verdict(cut, "eos") == "invalid"


def test_an_unclosed_call_is_pending():
    assert parse_tool_calls('Thinking.\n<tool_call>\n{"name": "mul', TOOLS).pending


# ---- verdicts and tool_choice -------------------------------------------------------


def test_verdicts_follow_tool_choice():
    auto, anyone = StructureCheck(TOOLS), StructureCheck(TOOLS, "any")
    named, none = StructureCheck(TOOLS, "lookup"), StructureCheck(TOOLS, "none")
    assert auto.verdict(GOOD, "eos") == "complete"
    assert auto.verdict("The answer is 42.", "eos") == "continue"  # a text answer is allowed
    assert anyone.verdict("The answer is 42.", "eos") == "invalid"  # a call was required
    assert anyone.verdict("Let me think.\n\n", "delimiter") == "continue"  # not ended yet
    assert named.verdict(GOOD, "eos") == "invalid"  # the wrong tool
    assert named.verdict(call("lookup", {"key": "pi"}), "eos") == "complete"
    assert none.verdict(GOOD, "eos") == "invalid"
    assert auto.verdict(BAD_ARGS, "eos") == "invalid"
    assert auto.verdict('<tool_call>\n{"name": "mul', "length") == "continue"  # may still close
    assert auto.verdict('<tool_call>\n{"name": "mul', "eos") == "invalid"


def test_json_replies_are_checked_against_the_schema():
    check = StructureCheck(json_reply=True, json_schema={
        "type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]})
    assert check.verdict('{"answer": 42}', "eos") == "complete"
    assert check.verdict('```json\n{"answer": 42}\n```', "eos") == "complete"
    assert check.verdict('{"answer": "42"}', "eos") == "invalid"
    assert check.verdict('{"answer": ', "delimiter") == "continue"
    assert check.verdict('The answer is 42', "eos") == "invalid"


def test_bad_tool_settings_are_refused_by_name():
    with pytest.raises(ConfigError, match=r"tool_choice='divide'.*bound: multiply, lookup"):
        StructureCheck(TOOLS, "divide")
    with pytest.raises(ConfigError, match="tool 'broken' has an invalid JSON schema"):
        ToolSpec("broken", {"type": "no-such-type"})
    twice = StructureCheck((MULTIPLY, ToolSpec("multiply", {"type": "object"})))  # two schemas
    assert twice.verdict(BAD_ARGS, "eos") == "complete"  # either schema may pass
    with pytest.raises(ConfigError, match="structure="):
        SpecsConfig(structure="json")


# ---- the prompt ----------------------------------------------------------------------


def test_tool_turns_render_as_plain_messages():
    messages = [{"role": "system", "content": "Be exact."}, {"role": "user", "content": "6*7?"},
                {"role": "assistant", "content": "", "tool_calls": [{"name": "multiply",
                                                                     "arguments": {"a": 6, "b": 7}}]},
                {"role": "tool", "content": "42"}, {"role": "tool", "content": "ok"}]
    rendered = render_messages(messages, tools_section(TOOLS, "any"))
    assert rendered[0]["content"].startswith("Be exact.\n\n# Tools")
    assert json.dumps(MULTIPLY.as_json()) in rendered[0]["content"]
    assert rendered[0]["content"].endswith("You must call at least one of these functions.")
    assert rendered[2] == {"role": "assistant", "content": GOOD}
    assert rendered[3] == {"role": "user", "content":
                           "<tool_response>\n42\n</tool_response>\n<tool_response>\nok\n</tool_response>"}
    assert len(rendered) == 4


def test_the_rendering_matches_the_real_qwen25_template_given_tools():
    """The Qwen2.5-Coder-Instruct template (Apache-2.0, copied verbatim from the metadata
    of the preset's GGUF) renders our plain messages exactly as it renders the same
    conversation given tools= natively."""
    from transformers.utils.chat_template_utils import render_jinja_template

    template = (Path(__file__).parent.parent / "helpers" / "qwen25_chat_template.jinja").read_text()
    messages = [{"role": "system", "content": "Be exact."}, {"role": "user", "content": "6*7?"},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"type": "function", "function": {"name": "multiply", "arguments": {"a": 6, "b": 7}}}]},
                {"role": "tool", "content": "42"}]
    native, _ = render_jinja_template([messages], tools=[t.as_json() for t in TOOLS],
                                      chat_template=template, add_generation_prompt=True)
    flat = [{**m, "tool_calls": [c["function"] for c in m.get("tool_calls", [])]} for m in messages]
    ours, _ = render_jinja_template([render_messages(flat, tools_section(TOOLS))],
                                    chat_template=template, add_generation_prompt=True)
    assert ours == native


# ---- the search hook, on scripted models ----------------------------------------------


def engine_with(draft_steps, target_steps, draft_lp=-0.1, target_lp=-0.1):
    draft = ScriptedLM("draft", lambda i: draft_steps[min(i, len(draft_steps) - 1)],
                       default_logprob=draft_lp)
    target = ScriptedLM("target", lambda i: target_steps[min(i, len(target_steps) - 1)],
                        default_logprob=target_lp)
    return SpecsEngine(draft, target, ScriptedReward(0.9)), draft, target


def test_a_malformed_draft_call_is_never_accepted_and_the_round_defers():
    engine, draft, target = engine_with([["Thinking.\n\n"], [BAD_ARGS, UNKNOWN]],
                                        [["Thinking.\n\n"], [GOOD]])
    config = SpecsConfig(n=2, beam_width=2, accept_threshold=-100.0, structure=StructureCheck(TOOLS))
    result = engine.generate("6*7?", config=config, budget=Budget(max_steps=4))
    assert result.text == "Thinking.\n\n" + GOOD
    assert [s.source for s in result.steps] == ["target", "target"]
    assert result.stats.draft_rounds == 1 and result.stats.draft_rounds_rejected == 1
    assert result.stats.candidates_rejected_structure == 2
    assert target.score_calls == 0  # nothing was left to verify
    assert result.finished and result.stop_reason == "finished"


def test_without_the_check_the_same_malformed_draft_call_is_accepted():
    """The control: the hook, not the scripts, keeps the malformed call out."""
    engine, _, _ = engine_with([["Thinking.\n\n"], [BAD_ARGS]], [["Thinking.\n\n"], [GOOD]])
    config = SpecsConfig(n=2, beam_width=2, accept_threshold=-100.0)
    assert BAD_ARGS in engine.generate("6*7?", config=config, budget=Budget(max_steps=4)).text


def test_a_valid_draft_call_ends_the_solution():
    engine, draft, _ = engine_with([[GOOD]], [["Thinking.\n\n"]])
    config = SpecsConfig(n=2, beam_width=2, accept_threshold=-100.0, structure=StructureCheck(TOOLS))
    result = engine.generate("6*7?", config=config, budget=Budget(max_steps=8))
    assert result.text.endswith(GOOD) and result.steps[-1].source == "draft"
    assert len(result.steps) == 2 and result.finished
    assert result.stats.candidates_rejected_structure == 0


def test_a_valid_candidate_is_kept_over_an_invalid_one_in_a_target_round():
    engine, _, _ = engine_with([["x"]], [[BAD_ARGS, GOOD]])
    config = SpecsConfig(n=2, beam_width=1, structure=StructureCheck(TOOLS, "any"))
    result = engine.generate("6*7?", config=config, budget=Budget(max_steps=2))
    assert result.text == GOOD and result.stats.candidates_rejected_structure == 1


def test_a_round_that_cannot_defer_keeps_its_candidates_and_the_failure_shows():
    engine, _, _ = engine_with([["x"]], [[BAD_ARGS]])
    config = SpecsConfig(n=2, beam_width=2, structure=StructureCheck(TOOLS, "any"))
    result = engine.generate("6*7?", config=config, budget=Budget(max_steps=2))
    assert result.text == BAD_ARGS  # the target is the last resort ...
    assert parse_tool_calls(result.text, TOOLS).invalid  # ... and its call parses as invalid


def test_rsd_defers_a_round_whose_draft_calls_all_fail():
    engine, _, target = engine_with([[BAD_ARGS, UNKNOWN]], [[GOOD]])
    config = SpecsConfig(n=2, beam_width=2, structure=StructureCheck(TOOLS))
    result = engine.generate("6*7?", method="rsd", config=config, budget=Budget(max_steps=2))
    assert result.text == GOOD and [s.source for s in result.steps] == ["target"]
    assert result.stats.draft_rounds_rejected == 1 and result.stats.candidates_rejected_structure == 2
