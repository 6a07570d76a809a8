"""The one contract every LLM backend implements: a rendered prompt in, a validated pydantic model out.

As in instructor, the response model *is* the contract: adapters turn its JSON schema into whatever the
provider enforces (a GBNF grammar for llama.cpp, `response_format` for OpenAI-compatible servers,
structured output for LangChain chat models), then validate the reply with the same model. Response
models must bound every string (`max_length`) and list (`max_length`) so tiny models terminate.

The shared half lives here once: `Backend.generate` validates what a backend's transport (`_reply`) got
back, so a backend module only adapts its provider's request and reply.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ValidationError

from interestlens.agent.errors import LLMOutputError
from interestlens.agent.prompting import RenderedPrompt

T = TypeVar("T", bound=BaseModel)


@dataclass
class LLMUsage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    # Prompt tokens served from the KV cache of an earlier call with the same prefix (llama.cpp only).
    cached_prompt_tokens: int = 0


@dataclass
class StructuredResponse(Generic[T]):
    value: T
    usage: LLMUsage = field(default_factory=LLMUsage)
    raw: str = ""


@runtime_checkable
class StructuredLLM(Protocol):
    """Implemented by LlamaCppLLM, OpenAICompatibleLLM and LangChainLLM (through `Backend`)."""

    model_id: str

    def generate(
        self,
        prompt: RenderedPrompt,
        response_model: type[T],
        *,
        max_tokens: int = 512,
        temperature: float = 0.0,
    ) -> StructuredResponse[T]:
        """Return the validated reply. Raises LLMError (backend failed) or LLMOutputError (reply invalid)."""
        ...


def output_error(message: str, raw: str, usage: LLMUsage) -> LLMOutputError:
    """An LLMOutputError carrying the reply and what it cost, so the caller's accounting counts the attempt."""
    err = LLMOutputError(message)
    err.raw = raw  # type: ignore[attr-defined]
    err.usage = usage  # type: ignore[attr-defined]
    return err


def validate_reply(
    raw: str, response_model: type[T], model_id: str, usage: LLMUsage, finish_reason: str | None = None
) -> T:
    """`response_model` parsed from `raw`, or LLMOutputError (carrying `.raw` and `.usage` for accounting)."""
    try:
        return response_model.model_validate_json(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "reply"
        hint = " (cut off at max_tokens)" if finish_reason == "length" else ""
        message = f"{model_id} reply is not a valid {response_model.__name__}{hint}: {where}: {first.get('msg')}"
        raise output_error(message, raw, usage) from e


@dataclass
class Reply:
    """What a backend's transport got back, before validation."""

    text: str  # the JSON text to validate
    usage: LLMUsage
    finish_reason: str | None = None  # "length": cut off at max_tokens
    raw: str | None = None  # the provider's own reply, when `text` was rebuilt from a parsed value; None: `text`


class Backend(ABC):
    """A StructuredLLM whose subclass supplies only the transport: `_reply` sends the prompt with the response
    model's schema in the provider's form and returns the reply text; `generate` validates it."""

    model_id: str

    def generate(
        self, prompt: RenderedPrompt, response_model: type[T], *, max_tokens: int = 512, temperature: float = 0.0
    ) -> StructuredResponse[T]:
        reply = self._reply(prompt, response_model, max_tokens, temperature)
        value = validate_reply(reply.text, response_model, self.model_id, reply.usage, reply.finish_reason)
        return StructuredResponse(value=value, usage=reply.usage, raw=reply.text if reply.raw is None else reply.raw)

    @abstractmethod
    def _reply(
        self, prompt: RenderedPrompt, response_model: type[BaseModel], max_tokens: int, temperature: float
    ) -> Reply:
        """One request to the provider. Raises LLMError when it fails, LLMOutputError when it gives no reply."""


class LabelScores(dict[str, float]):
    """label -> log-probability of that label as the first answer token; `usage` is what the pass cost."""

    def __init__(self, scores: dict[str, float], usage: LLMUsage | None = None) -> None:
        super().__init__(scores)
        self.usage = usage or LLMUsage()


@runtime_checkable
class LabelScorer(Protocol):
    """A backend that can score answer labels in one forward pass (LlamaRec / FIRST style ranking).

    Separate from StructuredLLM so that backends without log-probabilities still satisfy that protocol.
    Implementations raise `LogprobsUnavailable` when the endpoint gives no log-probabilities (the caller
    then falls back to listwise generation), LLMError when the backend fails.
    """

    model_id: str

    def score_labels(self, prompt: RenderedPrompt, labels: Sequence[str]) -> LabelScores:
        """Log-probability of each label (every label present, finite) as the reply's first token."""
        ...


class Stopwatch:
    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    @property
    def ms(self) -> float:
        return (time.perf_counter() - self.t0) * 1000.0
