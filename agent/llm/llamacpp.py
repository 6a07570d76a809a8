"""Local GGUF models through llama-cpp-python, with grammar-constrained JSON output.

One `llama_cpp.Llama` per `LlamaCppLLM`, loaded once and reused; calls are serialised by a lock because a
llama.cpp context is not thread-safe. The response model becomes a bounded GBNF grammar (see `schema.py`),
so even a 135M model can only emit JSON of the right shape; pydantic then validates it. Greedy decoding under
it tests the model's top token before the whole vocabulary (llamacpp_sampling.py): the same tokens, sooner.

Prompts longer than the context: the user message is cut in the middle (its head and tail are kept, since
instructions and fences usually sit at both ends; a fence the cut falls in is closed and reopened) so that
prompt + max_tokens fit. If the system prompt alone leaves no room, `LLMError` is raised.
`score_labels` reads label log-probabilities from one evaluation of the prompt (llamacpp_scoring.py).

Run `python -m interestlens.agent.llm.llamacpp --model X.gguf --host 127.0.0.1 --port N` for the
llama_cpp OpenAI-compatible server with the same CPU workaround applied (see `gguf.weight_repack`).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from interestlens.agent.errors import LLMError
from interestlens.agent.llm.base import Backend, LLMUsage, Reply, Stopwatch
from interestlens.agent.llm.gguf import OtherProcessesLoad, serve_openai, weight_repack
from interestlens.agent.llm.llamacpp_prefix import PrefixStates
from interestlens.agent.llm.llamacpp_sampling import grammar_first_llama_class
from interestlens.agent.llm.llamacpp_scoring import LlamaLabelScoring
from interestlens.agent.llm.schema import DEFAULT_MAX_ITEMS, DEFAULT_MAX_STRING, budget_gbnf, model_gbnf
from interestlens.agent.prompting import RenderedPrompt, truncate_fenced

# Tokens reserved for the chat template's role markers around the system and user messages.
_TEMPLATE_OVERHEAD = 24
_MIN_USER_TOKENS = 32


class LlamaCppLLM(LlamaLabelScoring, Backend):
    """StructuredLLM over a local GGUF file. Thread-safe (one call at a time)."""

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        n_ctx: int = 2048,
        n_gpu_layers: int = 0,
        n_threads: int | None = None,
        chat_format: str | None = None,
        seed: int = 0,
        *,
        cpu_repack: bool = False,
        prompt_cache_mb: int = 64,
        grammar_first: bool = True,
        max_string: int = DEFAULT_MAX_STRING,
        max_items: int = DEFAULT_MAX_ITEMS,
    ) -> None:
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise LLMError(f"GGUF model file not found: {path}")
        try:
            import llama_cpp
        except ImportError as e:  # pragma: no cover - a declared dependency
            raise LLMError("llama-cpp-python is not installed; choose another LLM backend") from e

        self.model_path = path
        self.model_id = f"gguf:{path.name}"
        self.seed = seed
        self.max_string = max_string
        self.max_items = max_items
        # Offload happens only when llama.cpp was built with a GPU backend; otherwise layers stay on CPU.
        self.gpu_offload = bool(n_gpu_layers) and bool(llama_cpp.llama_supports_gpu_offload())
        self._lock = threading.Lock()
        # Threads per call (`_use_free_cores`) unless fixed: llama.cpp threads spin at barriers, so asking for
        # cores another process holds makes a call ~20x slower (measured: 4.6 s vs 94 s on 2 cores), while on an
        # idle machine every core halves the time (2 cores: 308 against 154 prompt tokens/s).
        self._fixed_threads = n_threads
        self._cores = os.cpu_count() or 2
        threads = n_threads or max(1, self._cores // 2)
        self._threads = threads
        self._others_load = OtherProcessesLoad()
        sw = Stopwatch()
        llama_class = grammar_first_llama_class() if grammar_first else llama_cpp.Llama
        try:
            with weight_repack(cpu_repack):
                self._llama = llama_class(
                    model_path=str(path),
                    n_ctx=n_ctx,
                    n_gpu_layers=n_gpu_layers,
                    n_threads=threads,
                    n_threads_batch=threads,
                    chat_format=chat_format,  # None: the GGUF's own tokenizer.chat_template
                    seed=seed,
                    verbose=False,
                )
        except (ValueError, RuntimeError, OSError) as e:
            raise LLMError(f"cannot load GGUF model {path}: {e}") from e
        self.load_ms = sw.ms
        self.chat_format: str = self._llama.chat_format or ""
        # Each stage's system-prompt KV state, loaded back when another stage's call replaced it (0 = off).
        self._prefix_states = PrefixStates(prompt_cache_mb << 20)

    def threads_for_now(self) -> int:
        """Cores this call may use: all of them when other processes left them idle since the last call, else
        half (what other processes used, not the load average, which counts this process's own last call)."""
        if self._fixed_threads:
            return self._fixed_threads
        others = self._others_load.cores_busy()
        if others is None:
            return max(1, self._cores // 2)
        return self._cores if others <= 0.5 else max(1, self._cores // 2)

    def _use_free_cores(self) -> None:
        """Set llama.cpp's thread count for the next evaluation (held lock; a cheap C call)."""
        import llama_cpp

        threads = self.threads_for_now()
        if threads != self._threads:
            llama_cpp.llama_set_n_threads(self._llama._ctx.ctx, threads, threads)
            self._threads = threads

    @property
    def n_ctx(self) -> int:
        return int(self._llama.n_ctx())

    def count_tokens(self, text: str) -> int:
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def _fit_messages(self, prompt: RenderedPrompt, max_tokens: int) -> tuple[list[dict[str, str]], int]:
        """Messages that fit the context with room for `max_tokens` (the last user text cut in the middle; the
        system prompt and earlier turns are kept whole, since a continued prompt reuses their KV state)."""
        *kept, last = prompt.messages()
        system_tokens = sum(self.count_tokens(m["content"]) for m in kept)
        user_ids = self._llama.tokenize(prompt.user.encode("utf-8"), add_bos=False, special=False)
        budget = self.n_ctx - _TEMPLATE_OVERHEAD * len(kept) - system_tokens - max_tokens
        if budget < _MIN_USER_TOKENS:
            raise LLMError(
                f"prompt does not fit the model context: system prompt and earlier turns {system_tokens} tokens "
                f"+ max_tokens {max_tokens} leave no room in n_ctx={self.n_ctx}"
            )
        user = prompt.user
        if len(user_ids) > budget:
            # Cut in characters with `truncate_fenced`, which closes and reopens a fence the cut falls in (a cut
            # in token space could drop a closing marker), shrinking until the tokens fit.
            max_chars = max(64, len(user) * (budget - 8) // len(user_ids))
            while True:
                user = truncate_fenced(prompt.user, max_chars)
                if self.count_tokens(user) <= budget or max_chars <= 64:
                    break
                max_chars = max(64, max_chars * 9 // 10)
        return [*kept, {**last, "content": user}], max_tokens

    def _reply(
        self, prompt: RenderedPrompt, response_model: type[BaseModel], max_tokens: int, temperature: float
    ) -> Reply:
        max_tokens = max(1, min(int(max_tokens), self.n_ctx // 2))
        gbnf = model_gbnf(response_model, max_string=self.max_string, max_items=self.max_items)
        reply = self._complete(prompt, gbnf, max_tokens, temperature)
        if reply.finish_reason == "length":
            # Cut at max_tokens: the grammar guaranteed a prefix of valid JSON, not a whole one, and how far a
            # tiny model rambles differs across CPUs. Ask again under a grammar whose longest output fits.
            gbnf, budget = budget_gbnf(response_model, max_tokens, max_items=self.max_items)
            first = reply.usage
            reply = self._complete(prompt, gbnf, min(budget, self.n_ctx // 2), temperature)
            reply.usage = LLMUsage(
                prompt_tokens=first.prompt_tokens + reply.usage.prompt_tokens,
                completion_tokens=first.completion_tokens + reply.usage.completion_tokens,
                latency_ms=first.latency_ms + reply.usage.latency_ms,
            )
        return reply

    def _complete(self, prompt: RenderedPrompt, gbnf: str, max_tokens: int, temperature: float) -> Reply:
        """One grammar-constrained chat completion."""
        from llama_cpp import LlamaGrammar

        grammar = LlamaGrammar.from_string(gbnf, verbose=False)
        sw = Stopwatch()
        with self._lock:
            self._use_free_cores()
            messages, max_tokens = self._fit_messages(prompt, max_tokens)
            try:
                # The completion's own prefix match then evaluates only what follows the kept KV.
                cached, _ = self._prefix_states.prepare(self._llama, *self._prompt_tokens(messages))
                out: Any = self._llama.create_chat_completion(
                    messages=messages,  # type: ignore[arg-type]
                    grammar=grammar,
                    max_tokens=max_tokens,
                    temperature=temperature,
                    seed=self.seed,
                )
            except (ValueError, RuntimeError) as e:
                raise LLMError(f"{self.model_id} failed: {e}") from e
        choice = out["choices"][0]
        u = out.get("usage") or {}
        usage = LLMUsage(
            prompt_tokens=int(u.get("prompt_tokens", 0)),
            completion_tokens=int(u.get("completion_tokens", 0)),
            latency_ms=sw.ms,
            cached_prompt_tokens=cached,
        )
        return Reply(choice["message"].get("content") or "", usage, choice.get("finish_reason"))

    def close(self) -> None:
        with self._lock:
            close = getattr(self._llama, "close", None)
            if close is not None:
                close()


if __name__ == "__main__":
    serve_openai()
