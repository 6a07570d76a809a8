"""Any LangChain chat model as a StructuredLLM, through `with_structured_output(..., include_raw=True)`.

The bounded, $ref-free schema (see `schema.py`) is what LangChain sends, so servers that build grammars from
tool parameters (llama_cpp.server) bound the output too; the reply is then validated with the pydantic model.

Methods: "function_calling" (default: a forced tool call, works with OpenAI and llama_cpp.server),
"json_mode" (JSON mode plus the schema stated in the system prompt), "json_schema" (strict structured output;
llama_cpp.server refuses it).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel

from interestlens.agent.errors import LLMError
from interestlens.agent.llm.base import Backend, LLMUsage, Reply, Stopwatch, output_error
from interestlens.agent.llm.openai_compat import with_json_instructions
from interestlens.agent.llm.schema import grammar_schema, openai_strict_schema
from interestlens.agent.prompting import RenderedPrompt

Method = Literal["function_calling", "json_mode", "json_schema"]
METHODS: tuple[str, ...] = ("function_calling", "json_mode", "json_schema")


class LangChainLLM(Backend):
    """StructuredLLM over a `langchain_core` BaseChatModel (ChatOpenAI, ChatOllama, ...)."""

    def __init__(self, chat_model: Any, method: Method = "function_calling") -> None:
        from langchain_core.language_models import BaseChatModel

        if not isinstance(chat_model, BaseChatModel):
            raise LLMError(f"LangChainLLM needs a LangChain chat model, got {type(chat_model).__name__}")
        if method not in METHODS:
            raise LLMError(f"unknown structured-output method {method!r}; use one of {', '.join(METHODS)}")
        self.chat_model = chat_model
        self.method: Method = method
        name = getattr(chat_model, "model_name", None) or getattr(chat_model, "model", None)
        self.model_id = f"langchain:{name or chat_model._llm_type}"

    def _configured(self, max_tokens: int, temperature: float) -> Any:
        """The chat model with this call's token limit and temperature, where the model has such fields."""
        fields = type(self.chat_model).model_fields
        update = {k: v for k, v in (("max_tokens", max_tokens), ("temperature", temperature)) if k in fields}
        return self.chat_model.model_copy(update=update) if update else self.chat_model

    def _reply(
        self, prompt: RenderedPrompt, response_model: type[BaseModel], max_tokens: int, temperature: float
    ) -> Reply:
        from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

        name = response_model.__name__
        if self.method == "json_schema":
            schema = {"title": name, **openai_strict_schema(response_model)}
        else:
            schema = {
                "title": name,
                "description": (response_model.__doc__ or name).strip()[:1000],
                **grammar_schema(response_model),
            }
        if self.method == "json_mode":
            messages = with_json_instructions(prompt, response_model)
        else:
            messages = prompt.messages()
        role_class = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}
        lc_messages = [role_class[m["role"]](m["content"]) for m in messages]
        sw = Stopwatch()
        try:
            runnable = self._configured(max_tokens, temperature).with_structured_output(
                schema, method=self.method, include_raw=True
            )
            result: dict[str, Any] = runnable.invoke(lc_messages)
        except (LLMError, KeyboardInterrupt):
            raise
        except Exception as e:  # providers raise their own exception types; all mean "the backend failed"
            raise LLMError(f"{self.model_id} failed: {type(e).__name__}: {str(e)[:300]}") from e
        raw_message = result.get("raw")
        usage = LLMUsage(latency_ms=sw.ms)
        meta = getattr(raw_message, "usage_metadata", None) or {}
        usage.prompt_tokens = int(meta.get("input_tokens", 0))
        usage.completion_tokens = int(meta.get("output_tokens", 0))
        parsed = result.get("parsed")
        raw_text = _raw_text(raw_message)
        if parsed is not None:  # LangChain's parse, validated again from its JSON like every backend's reply
            return Reply(json.dumps(parsed), usage, raw=raw_text)
        if not raw_text:
            error = result.get("parsing_error")
            raise output_error(f"{self.model_id} gave no parseable reply: {error}", raw_text, usage)
        return Reply(raw_text, usage)


def _raw_text(message: Any) -> str:
    """The JSON text of the reply: the forced tool call's arguments, else the message content."""
    if message is None:
        return ""
    tool_calls = getattr(message, "tool_calls", None) or []
    if tool_calls:
        return json.dumps(tool_calls[0].get("args", {}))
    extra = (getattr(message, "additional_kwargs", None) or {}).get("tool_calls") or []
    if extra:
        return str(extra[0].get("function", {}).get("arguments", ""))
    content = getattr(message, "content", "")
    return content if isinstance(content, str) else json.dumps(content)
