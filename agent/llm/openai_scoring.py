"""Label scoring on an OpenAI-compatible endpoint (the `LabelScorer` protocol; rerank by scoring).

One request with max_tokens=1 and `top_logprobs`: each label's log-probability as the reply's first token.
A mixin of `OpenAICompatibleLLM`, which supplies the client; endpoints without log-probabilities raise
`LogprobsUnavailable` (remembered, so later calls fail fast) and the caller falls back to generation.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from interestlens.agent.errors import LLMError, LogprobsUnavailable
from interestlens.agent.llm.base import LabelScores, LLMUsage, Stopwatch
from interestlens.agent.prompting import RenderedPrompt

TOP_LOGPROBS = 20  # the most OpenAI's API returns
# A label outside the returned top log-probabilities is less likely than the least likely one returned:
# it gets that value minus this margin (finite, so averaging over orders still works).
MISSING_LABEL_MARGIN = 1.0


def label_scores_from_top(top: Sequence[tuple[str, float]], labels: Sequence[str]) -> dict[str, float]:
    """Label -> log-probability from a first token's top alternatives ("A", " A", "(A" all count as A).

    Several spellings of one label add up (log-sum-exp); labels not among them get the floor described above.
    """
    wanted = set(labels)
    probs: dict[str, float] = {}
    for token, logprob in top:
        label = token.strip().lstrip("(").rstrip(").:")
        if label in wanted and math.isfinite(logprob):
            probs[label] = probs.get(label, 0.0) + math.exp(logprob)
    finite = [lp for _, lp in top if math.isfinite(lp)]
    floor = (min(finite) if finite else -30.0) - MISSING_LABEL_MARGIN
    return {lab: (math.log(probs[lab]) if probs.get(lab, 0.0) > 0 else floor) for lab in labels}


# Reading the SDK's replies (OpenAICompatibleLLM's requests too).
def error_text(e: Any) -> str:
    """The server's message in an SDK error, on one line and short (for LLMError texts)."""
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        msg = body.get("message") or body.get("detail") or body.get("error") or body
        text = msg if isinstance(msg, str) else json.dumps(msg, default=str)
    else:
        text = str(getattr(e, "message", "") or e)
    return text.replace("\n", " ")[:300]


def usage_of(response: Any) -> LLMUsage:
    """The token counts of a chat completion (zero where the server reports none)."""
    u = response.usage
    return LLMUsage(
        prompt_tokens=int(u.prompt_tokens or 0) if u else 0,
        completion_tokens=int(u.completion_tokens or 0) if u else 0,
    )


class OpenAILabelScoring:
    """`score_labels` for a class holding an `openai.OpenAI` client (`_client`) and its model name."""

    _client: Any
    model: str
    model_id: str
    base_url: str | None
    _token_param: str
    _logprobs: bool  # until the endpoint answers without log-probabilities

    def score_labels(self, prompt: RenderedPrompt, labels: Sequence[str]) -> LabelScores:
        """Label log-probabilities from the first reply token's `top_logprobs` (one request, max_tokens=1).

        Raises LogprobsUnavailable when the endpoint returns none (remembered: later calls fail fast).
        """
        import openai

        if not self._logprobs:
            raise LogprobsUnavailable(f"{self.model_id} gives no log-probabilities")
        sw = Stopwatch()
        try:
            response = self._client.chat.completions.create(
                model=self.model, messages=prompt.messages(), temperature=0.0, logprobs=True,  # type: ignore[arg-type]
                top_logprobs=TOP_LOGPROBS, **{self._token_param: 1},
            )
        except openai.APIStatusError as e:
            if 400 <= int(e.status_code) < 500 and int(e.status_code) not in (401, 403, 404, 429):
                self._logprobs = False  # a server that refuses the logprobs parameters
                raise LogprobsUnavailable(f"{self.model_id} refused logprobs: {error_text(e)}") from e
            raise LLMError(f"{self.model_id} refused the request ({e.status_code}): {error_text(e)}") from e
        except openai.APITimeoutError as e:
            raise LLMError(f"{self.model_id} timed out ({self.base_url or 'api.openai.com'})") from e
        except openai.OpenAIError as e:
            raise LLMError(f"{self.model_id} failed: {e}") from e
        choice = response.choices[0] if response.choices else None
        content = getattr(getattr(choice, "logprobs", None), "content", None) or []
        if not content or not getattr(content[0], "top_logprobs", None):
            self._logprobs = False
            raise LogprobsUnavailable(f"{self.model_id} returned no log-probabilities")
        first = content[0]
        alternatives = {t.token: float(t.logprob) for t in first.top_logprobs}
        alternatives.setdefault(first.token, float(first.logprob))  # the chosen token, if not listed
        top = list(alternatives.items())
        usage = usage_of(response)
        usage.latency_ms = sw.ms
        return LabelScores(label_scores_from_top(top, labels), usage)

