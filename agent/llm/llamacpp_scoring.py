"""Label scoring on a local llama.cpp model (the `LabelScorer` protocol; rerank by scoring).

`score_labels` reads the labels' log-probabilities as the reply's first token from one evaluation of the
prompt, with no generation. A mixin of `LlamaCppLLM`, which supplies the loaded model and its lock.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from interestlens.agent.errors import LLMError
from interestlens.agent.llm.base import LabelScores, LLMUsage, Stopwatch
from interestlens.agent.llm.llamacpp_prefix import PrefixStates
from interestlens.agent.prompting import RenderedPrompt

# Stands in for the user message when locating where the system-only prefix of a chat prompt ends.
_USER_MARK = "\u2063user\u2063"


class LlamaLabelScoring:
    """`score_labels` for a class holding a loaded `llama_cpp.Llama` (`_llama`) and its lock (`_lock`)."""

    _llama: Any
    _lock: threading.Lock
    model_id: str
    chat_format: str

    if TYPE_CHECKING:  # supplied by LlamaCppLLM

        @property
        def n_ctx(self) -> int: ...

        def _fit_messages(self, prompt: RenderedPrompt, max_tokens: int) -> tuple[list[dict[str, str]], int]: ...

        def _use_free_cores(self) -> None: ...

        _prefix_states: PrefixStates

    def _detokenize(self, ids: list[int]) -> str:
        return self._llama.detokenize(ids).decode("utf-8", errors="ignore")

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

    def _prompt_tokens(self, messages: list[dict[str, str]]) -> tuple[list[int], int]:
        """(the chat prompt's tokens, how many of them depend on the system message only): that prefix is the
        same for every call of a stage, so its KV state can be kept (`PrefixStates`)."""
        tokens = self._llama.tokenize(self._chat_text(messages).encode("utf-8"), add_bos=False, special=True)
        if len(messages) < 2:
            return tokens, 0
        marked = self._chat_text([messages[0], {"role": "user", "content": _USER_MARK}])
        head = self._llama.tokenize(marked[: marked.index(_USER_MARK)].encode("utf-8"), add_bos=False, special=True)
        # The head's last token can merge with the user text's first; only tokens both tokenisations agree on count.
        return tokens, self._llama.longest_token_prefix(head, tokens)

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
            self._use_free_cores()
            messages, _ = self._fit_messages(prompt, 1)
            tokens, static = self._prompt_tokens(messages)
            if len(tokens) >= self.n_ctx:
                raise LLMError(f"{self.model_id}: prompt of {len(tokens)} tokens does not fit n_ctx={self.n_ctx}")
            llama = self._llama
            try:
                # Reuse what the KV cache holds (or the stage's kept prefix); the last token is always evaluated
                # again, for its logits.
                reused, held = self._prefix_states.prepare(llama, tokens, static)
                held = min(held, len(tokens) - 1)
                llama.n_tokens = held
                llama.eval(tokens[held:])
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
                         cached_prompt_tokens=min(reused, held))
        return LabelScores(scores, usage)
