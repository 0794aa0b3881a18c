"""SPECS for LangChain: SpecsLLM (a text LLM) and ChatSpecs (a chat model).

Both run on a SpecsEngine; budgets come from the constructor, call kwargs, `.bind(...)`
or `config={"configurable": {...}}` (the exact rule is in `_settings`).
"""

try:
    import langchain_core  # noqa: F401
except ImportError:  # pragma: no cover - depends on the environment
    from specs_engine.errors import MissingExtraError

    raise MissingExtraError("langchain-core", "langchain") from None

from specs_integrations._settings import BudgetExhaustedError
from specs_integrations.langchain.chat_models import ChatSpecs
from specs_integrations.langchain.llms import SpecsLLM

__all__ = ["BudgetExhaustedError", "ChatSpecs", "SpecsLLM"]
