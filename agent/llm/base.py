"""The one contract every LLM backend implements: a rendered prompt in, a validated pydantic model out.

As in instructor, the response model *is* the contract: adapters turn its JSON schema into whatever the
provider enforces (a GBNF grammar for llama.cpp, `response_format` for OpenAI-compatible servers,
structured output for LangChain chat models), then validate the reply with the same model. Response
models must bound every string (`max_length`) and list (`max_length`) so tiny models terminate.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel

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
    """Implemented by LlamaCppLLM, OpenAICompatibleLLM and LangChainLLM."""

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
