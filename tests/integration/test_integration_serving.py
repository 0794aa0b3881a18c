"""The integrations hand serving options (api_key, timeout, vLLM memory) to the engine:
against the fake vLLM server, every request of both LangChain classes and the LlamaIndex
one carries the key, and the engine's servers have the timeout asked for."""

from __future__ import annotations

import pytest

from tests.helpers.fake_http import serving
from tests.unit.test_openai_backend import FakeVllm


def _classes():
    from specs_integrations.langchain import ChatSpecs, SpecsLLM
    from specs_integrations.llama_index import SpecsLLM as LlamaSpecsLLM

    return {"ChatSpecs": (ChatSpecs, lambda m: m.invoke("What is 2 + 3?")),
            "SpecsLLM": (SpecsLLM, lambda m: m.invoke("What is 2 + 3?")),
            "llama_index": (LlamaSpecsLLM, lambda m: m.complete("What is 2 + 3?"))}


@pytest.mark.parametrize("name", ["ChatSpecs", "SpecsLLM", "llama_index"])
def test_api_key_and_timeout_reach_the_server(name, monkeypatch):
    monkeypatch.delenv("SPECS_OPENAI_API_KEY", raising=False)
    cls, call = _classes()[name]
    with serving(FakeVllm) as httpd:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"  # a new port: a new engine
        model = cls(target=url, backend="openai", api_key="sk-serve-1", timeout=7.5,
                    method="greedy", max_steps=1, max_new_tokens=4)
        assert "sk-serve-1" not in repr(model)
        call(model)
        assert httpd.requests and all(r[3].get("Authorization") == "Bearer sk-serve-1"
                                      for r in httpd.requests)
        assert model.get_engine().target.server.timeout_s == 7.5


def test_a_serving_option_of_another_backend_is_refused_by_name():
    cls, _ = _classes()["llama_index"]
    with pytest.raises(ValueError, match="api_key= is an option of backend='openai'"):
        cls(target="some/model", api_key="sk-1")
    with pytest.raises(ValueError, match="gpu_memory_utilization= is an option of backend='vllm'"):
        cls(target="http://127.0.0.1:1", backend="openai", gpu_memory_utilization=0.3)


@pytest.mark.parametrize("name", ["ChatSpecs", "SpecsLLM", "llama_index"])
def test_vllm_memory_options_reach_the_engine(name, monkeypatch):
    from tests.helpers.fakes import count_loads

    loads = count_loads(monkeypatch)
    cls, call = _classes()[name]
    call(cls(target="some/model", backend="vllm", gpu_memory_utilization=0.3, max_model_len=2048,
             method="greedy", max_steps=1))
    assert loads and loads[0]["gpu_memory_utilization"] == 0.3 and loads[0]["max_model_len"] == 2048
