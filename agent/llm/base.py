"""The one contract every LLM backend implements: a rendered prompt in, a validated pydantic model out.

As in instructor, the response model *is* the contract: adapters turn its JSON schema into whatever the
provider enforces (a GBNF grammar for llama.cpp, `response_format` for OpenAI-compatible servers,
structured output for LangChain chat models), then validate the reply with the same model. Response
models must bound every string (`max_length`) and list (`max_length`) so tiny models terminate.
"""

from __future__ import annotations

import time
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


class Stopwatch:
    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    @property
    def ms(self) -> float:
        return (time.perf_counter() - self.t0) * 1000.0
