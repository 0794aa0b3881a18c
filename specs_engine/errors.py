"""Errors the engine raises. Each names what went wrong, where, and what is allowed."""

from __future__ import annotations


class SpecsError(Exception):
    """Base class for every error the engine raises on purpose."""


class ConfigError(SpecsError, ValueError):
    """Bad input caught before any model runs (a knob, a budget, a prompt, a method)."""


class ModelCallError(SpecsError, RuntimeError):
    """A model failed during the search; says which role, which model and which step.

    Raised instead of returning an empty answer, so a failure is never mistaken for
    "the search found nothing".
    """

    def __init__(self, role: str, model: str, step: int, cause: BaseException):
        self.role, self.model, self.step = role, model, step
        super().__init__(
            f"{role} model {model!r} failed at step {step}: {type(cause).__name__}: {cause}"
        )


class RewardError(ModelCallError):
    """The reward model raised or returned a value that is not a finite number."""


class ServerUnavailableError(SpecsError, ConnectionError):
    """A model server could not be reached, refused the key, or gave no answer in time."""


class ServerResponseError(SpecsError, RuntimeError):
    """A server answered with something that cannot be used as a score (bad JSON, a
    missing field, token counts that do not match what was sent)."""


class DeadlineExceededError(SpecsError, TimeoutError):
    """The call's deadline passed before a model answered; nothing usable came back.
    The search treats it as the latency budget running out, not as a failure."""


class MissingExtraError(SpecsError, ImportError):
    """An optional dependency is missing; the message names the install command."""

    def __init__(self, package: str, extra: str):
        super().__init__(
            f"{package} is not installed. Install it with: pip install 'specs-tts[{extra}]'"
        )
