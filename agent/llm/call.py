"""The one structured-call path every stage uses: generate, validate, retry once with the error fed back.

As instructor does: when a reply does not validate, the validation error is appended to the prompt and the
model asked once more; a second invalid reply raises LLMOutputError and the stage takes its non-LLM path.
Every attempt is counted in `StageStats` (calls, prompt and completion tokens), failed attempts included,
so the accounting says what the LLM really cost.
"""

from __future__ import annotations

import dataclasses
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from interestlens.agent.errors import LLMOutputError
from interestlens.agent.llm.base import LLMUsage, StructuredLLM
from interestlens.agent.models import StageStats
from interestlens.agent.prompting import RenderedPrompt, render
from interestlens.agent.tracing import llm_span

T = TypeVar("T", bound=BaseModel)

MAX_ERROR_CHARS = 300  # of the validation error fed back: enough to name the field, short for small contexts


def count_usage(stats: StageStats, usage: LLMUsage | None) -> None:
    if usage is not None:
        stats.prompt_tokens += usage.prompt_tokens
        stats.completion_tokens += usage.completion_tokens


def token_attrs(usage: LLMUsage | None) -> dict[str, int]:
    """Token counts as span attributes (empty when the backend reported none)."""
    if usage is None:
        return {}
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens}


def with_error_feedback(prompt: RenderedPrompt, error: str) -> RenderedPrompt:
    """`prompt` with the validator's message appended to the user turn (fenced: it may quote the reply)."""
    note = render("retry", error=error[:MAX_ERROR_CHARS]).user
    return dataclasses.replace(prompt, user=f"{prompt.user}\n\n{note}")


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
        with llm_span("generate", model_id=llm.model_id, version=prompt.version) as span:
            span.update(response_model=model.__name__, attempt=attempt + 1)
            try:
                resp = llm.generate(attempt_prompt, model, max_tokens=max_tokens, temperature=temperature)
                # Re-check: a backend is not trusted to have validated against this very model.
                value = model.model_validate(resp.value.model_dump()) if resp.value is not None else None
                if value is None:
                    raise LLMOutputError(f"{llm.model_id} returned no value")
                span.update(valid=True, **token_attrs(resp.usage))
            except (LLMOutputError, ValidationError) as e:
                error: LLMOutputError | ValidationError | None = e
                failed_usage = getattr(e, "usage", None) or (resp.usage if resp is not None else None)
                span.update(valid=False, **token_attrs(failed_usage))
            else:
                error = None
        if error is None:
            count_usage(stats, resp.usage if resp is not None else None)
            return value
        stats.invalid_outputs += 1
        count_usage(stats, failed_usage)
        if attempt >= retries:
            if isinstance(error, LLMOutputError):
                raise error
            raise LLMOutputError(f"{llm.model_id} reply is not a valid {model.__name__}: {error}") from error
        attempt_prompt = with_error_feedback(prompt, str(error))
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
