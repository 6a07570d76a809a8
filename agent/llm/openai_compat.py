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
Label scoring from log-probabilities (`score_labels`): openai_scoring.py.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel

from interestlens.agent.errors import LLMError, LLMOutputError
from interestlens.agent.llm.base import Backend, Reply, Stopwatch
from interestlens.agent.llm.openai_scoring import OpenAILabelScoring, error_text, usage_of
from interestlens.agent.llm.schema import describe_schema, grammar_schema, openai_strict_schema
from interestlens.agent.prompting import RenderedPrompt, render

Mode = Literal["auto", "json_schema", "json_object", "tools"]
MODES: tuple[str, ...] = ("auto", "json_schema", "json_object", "tools")


def with_json_instructions(prompt: RenderedPrompt, response_model: type[BaseModel]) -> list[dict[str, str]]:
    """Chat messages whose system message also states the JSON schema the reply must follow."""
    line = render("json_instructions", schema=describe_schema(response_model)).system
    system, *rest = prompt.messages()
    return [{"role": "system", "content": f"{system['content']}\n\n{line}".strip()}, *rest]


def _tool_name(response_model: type[BaseModel]) -> str:
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in response_model.__name__)[:64] or "reply"


class OpenAICompatibleLLM(OpenAILabelScoring, Backend):
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

    def _reply(
        self, prompt: RenderedPrompt, response_model: type[BaseModel], max_tokens: int, temperature: float
    ) -> Reply:
        import openai

        sw = Stopwatch()
        mode = self.mode
        while True:
            try:
                reply = self._request(mode, prompt, response_model, max_tokens, temperature)
                break
            except openai.APIStatusError as e:
                fallback = self._fallback_after(mode, e)
                if fallback is None:
                    raise LLMError(
                        f"{self.model_id} refused the request ({e.status_code}): {error_text(e)}"
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
        reply.usage.latency_ms = sw.ms
        return reply

    def _fallback_after(self, mode: str, e: Any) -> str | None:
        """The mode to retry with after an error answer, or None when retrying cannot help."""
        status = int(e.status_code)
        text = error_text(e).lower()
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
    ) -> Reply:
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
        return Reply(raw, usage_of(response))

