"""The one structured-call path every stage uses: generate, validate, retry once with the error fed back.

As instructor does: when a reply does not validate, the validation error is appended to the prompt and the
model asked once more; a second invalid reply raises LLMOutputError and the stage takes its non-LLM path.
Every attempt is counted in `StageStats` (calls, prompt and completion tokens), failed attempts included,
so the accounting says what the LLM really cost.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from interestlens.agent.errors import LLMOutputError
from interestlens.agent.llm.base import LLMUsage, StructuredLLM
from interestlens.agent.models import StageStats
from interestlens.agent.prompting import RenderedPrompt, render

T = TypeVar("T", bound=BaseModel)

MAX_ERROR_CHARS = 300  # of the validation error fed back: enough to name the field, short for small contexts


def count_usage(stats: StageStats, usage: LLMUsage | None) -> None:
    if usage is not None:
        stats.prompt_tokens += usage.prompt_tokens
        stats.completion_tokens += usage.completion_tokens


def with_error_feedback(prompt: RenderedPrompt, error: str) -> RenderedPrompt:
    """`prompt` with the validator's message appended to the user turn (fenced: it may quote the reply)."""
    note = render("retry", error=error[:MAX_ERROR_CHARS]).user
    return RenderedPrompt(system=prompt.system, user=f"{prompt.user}\n\n{note}", version=prompt.version)


def structured_call(
    llm: StructuredLLM,
    prompt: RenderedPrompt,
    model: type[T],
    *,
    stats: StageStats,
    max_tokens: int,
    temperature: float = 0.0,
    retries: int = 1,
) -> T:
    """The validated reply of `llm`; LLMOutputError after `retries` + 1 invalid replies, LLMError when the
    backend fails. Tokens of every attempt go to `stats`; each invalid reply counts in `invalid_outputs`."""
    attempt_prompt = prompt
    for attempt in range(retries + 1):
        stats.llm_calls += 1
        resp = None
        try:
            resp = llm.generate(attempt_prompt, model, max_tokens=max_tokens, temperature=temperature)
            # Re-check: a backend is not trusted to have validated against this very model.
            value = model.model_validate(resp.value.model_dump()) if resp.value is not None else None
            if value is None:
                raise LLMOutputError(f"{llm.model_id} returned no value")
        except (LLMOutputError, ValidationError) as e:
            stats.invalid_outputs += 1
            count_usage(stats, getattr(e, "usage", None) or (resp.usage if resp is not None else None))
            if attempt >= retries:
                if isinstance(e, LLMOutputError):
                    raise
                raise LLMOutputError(f"{llm.model_id} reply is not a valid {model.__name__}: {e}") from e
            attempt_prompt = with_error_feedback(prompt, str(e))
            continue
        count_usage(stats, resp.usage)
        return value
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
