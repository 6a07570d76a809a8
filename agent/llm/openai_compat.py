"""OpenAI-compatible chat servers (OpenAI, vLLM, llama_cpp.server, Ollama, ...) through the `openai` SDK.

Modes, from strongest to weakest guarantee:
- "json_schema": strict structured output (`response_format.type = json_schema`, closed objects).
- "tools": the schema is a forced function's parameters; the reply is the call's arguments.
- "json_object": JSON mode; the schema is stated in an extra system line (prompts/json_instructions.j2) and
  also sent as `response_format.schema`, which llama_cpp.server turns into a grammar. A server that refuses
  that extra key gets plain JSON mode from then on.
- "auto": json_schema first; a server that refuses it (a 4xx, or llama_cpp.server's 500 naming
  response_format) makes this instance switch to json_object for good.
Transport failures, timeouts and refusals raise LLMError; replies that do not validate raise LLMOutputError.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from typing import Any, Literal, TypeVar

from pydantic import BaseModel

from interestlens.agent.errors import LLMError, LLMOutputError, LogprobsUnavailable
from interestlens.agent.llm.base import LabelScores, LLMUsage, Stopwatch, StructuredResponse
from interestlens.agent.llm.schema import (
    describe_schema,
    grammar_schema,
    openai_strict_schema,
    validate_reply,
)
from interestlens.agent.prompting import RenderedPrompt, render

T = TypeVar("T", bound=BaseModel)
Mode = Literal["auto", "json_schema", "json_object", "tools"]
MODES: tuple[str, ...] = ("auto", "json_schema", "json_object", "tools")
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


def with_json_instructions(prompt: RenderedPrompt, response_model: type[BaseModel]) -> list[dict[str, str]]:
    """Chat messages whose system message also states the JSON schema the reply must follow."""
    line = render("json_instructions", schema=describe_schema(response_model)).system
    return [
        {"role": "system", "content": f"{prompt.system}\n\n{line}".strip()},
        {"role": "user", "content": prompt.user},
    ]


def _tool_name(response_model: type[BaseModel]) -> str:
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in response_model.__name__)[:64] or "reply"


class OpenAICompatibleLLM:
    """StructuredLLM over any OpenAI-compatible chat completions endpoint."""

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        mode: Mode = "auto",
        timeout: float = 60.0,
        *,
        max_retries: int = 1,
    ) -> None:
        import openai

        if mode not in MODES:
            raise LLMError(f"unknown OpenAI structured-output mode {mode!r}; use one of {', '.join(MODES)}")
        base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        api_key = api_key or os.environ.get("OPENAI_API_KEY")
        if not api_key:
            if base_url is None:
                raise LLMError("no OpenAI API key: set OPENAI_API_KEY, or OPENAI_BASE_URL for a local server")
            api_key = "not-needed"  # local servers ignore the key, the SDK insists on one
        self.model = model
        self.base_url = base_url
        self.mode: Mode = mode  # "auto" becomes the mode that worked, after the first call
        self.model_id = f"openai:{model}"
        self._client = openai.OpenAI(
            base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries
        )
        self._json_object_schema = True  # send response_format.schema until a server refuses it
        self._token_param = "max_tokens"
        self._logprobs = True  # until the endpoint answers without log-probabilities

    def generate(
        self,
        prompt: RenderedPrompt,
        response_model: type[T],
        *,
        max_tokens: int = 512,
        temperature: float = 0.0,
    ) -> StructuredResponse[T]:
        import openai

        sw = Stopwatch()
        mode = self.mode
        while True:
            try:
                raw, usage = self._request(mode, prompt, response_model, max_tokens, temperature)
                break
            except openai.APIStatusError as e:
                fallback = self._fallback_after(mode, e)
                if fallback is None:
                    raise LLMError(
                        f"{self.model_id} refused the request ({e.status_code}): {_brief(e)}"
                    ) from e
                mode = fallback
            except openai.APITimeoutError as e:
                raise LLMError(f"{self.model_id} timed out ({self.base_url or 'api.openai.com'})") from e
            except openai.APIConnectionError as e:
                raise LLMError(
                    f"cannot reach {self.model_id} at {self.base_url or 'api.openai.com'}: {e}"
                ) from e
            except openai.OpenAIError as e:
                raise LLMError(f"{self.model_id} failed: {e}") from e
        if self.mode == "auto":
            self.mode = mode if mode != "auto" else "json_schema"
        usage.latency_ms = sw.ms
        value = validate_reply(raw, response_model, self.model_id, usage)
        return StructuredResponse(value=value, usage=usage, raw=raw)

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
                raise LogprobsUnavailable(f"{self.model_id} refused logprobs: {_brief(e)}") from e
            raise LLMError(f"{self.model_id} refused the request ({e.status_code}): {_brief(e)}") from e
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
        u = response.usage
        usage = LLMUsage(
            prompt_tokens=int(u.prompt_tokens or 0) if u else 0,
            completion_tokens=int(u.completion_tokens or 0) if u else 0,
            latency_ms=sw.ms,
        )
        return LabelScores(label_scores_from_top(top, labels), usage)

    def _fallback_after(self, mode: str, e: Any) -> str | None:
        """The mode to retry with after an error answer, or None when retrying cannot help."""
        status = int(e.status_code)
        text = _brief(e).lower()
        # llama_cpp.server answers an unknown response_format with a 500 that names the field.
        refused_format = 400 <= status < 500 or ("response_format" in text and status == 500)
        if not refused_format or status in (401, 403, 404, 429):
            return None
        if self._token_param == "max_tokens" and "max_completion_tokens" in text:
            self._token_param = "max_completion_tokens"  # newer OpenAI models refuse max_tokens
            return mode
        if mode in ("auto", "json_schema") and self.mode == "auto":
            return "json_object"
        if mode == "json_object" and self._json_object_schema:
            self._json_object_schema = False
            return "json_object"
        return None

    def _request(
        self, mode: str, prompt: RenderedPrompt, model: type[BaseModel], max_tokens: int, temperature: float
    ) -> tuple[str, LLMUsage]:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "temperature": temperature,
            self._token_param: max_tokens,
        }
        if mode in ("auto", "json_schema"):
            kwargs["messages"] = prompt.messages()
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": _tool_name(model),
                    "schema": openai_strict_schema(model),
                    "strict": True,
                },
            }
        elif mode == "json_object":
            kwargs["messages"] = with_json_instructions(prompt, model)
            response_format: dict[str, Any] = {"type": "json_object"}
            if self._json_object_schema:
                response_format["schema"] = grammar_schema(model)
            kwargs["response_format"] = response_format
        else:  # tools
            name = _tool_name(model)
            kwargs["messages"] = prompt.messages()
            kwargs["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": name,
                        "description": (model.__doc__ or f"Return the {name}.").strip()[:1000],
                        "parameters": grammar_schema(model),
                    },
                }
            ]
            kwargs["tool_choice"] = {"type": "function", "function": {"name": name}}
        response = self._client.chat.completions.create(**kwargs)
        if not response.choices:
            raise LLMError(f"{self.model_id} returned no choices")
        message = response.choices[0].message
        raw = message.content or ""
        if mode == "tools" and message.tool_calls:
            raw = message.tool_calls[0].function.arguments or ""  # type: ignore[union-attr]
        if not raw and getattr(message, "refusal", None):
            raise LLMOutputError(f"{self.model_id} refused: {message.refusal}")
        u = response.usage
        usage = LLMUsage(
            prompt_tokens=int(u.prompt_tokens or 0) if u else 0,
            completion_tokens=int(u.completion_tokens or 0) if u else 0,
        )
        return raw, usage


def _brief(e: Any) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        msg = body.get("message") or body.get("detail") or body.get("error") or body
        text = msg if isinstance(msg, str) else json.dumps(msg, default=str)
    else:
        text = str(getattr(e, "message", "") or e)
    return text.replace("\n", " ")[:300]
