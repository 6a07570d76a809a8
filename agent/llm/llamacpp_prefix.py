"""KV states of static prompt prefixes (issue 10, "reuse what does not change").

llama.cpp keeps the KV cache of the last call only, so in a chat turn (decompose, compose, score, justify) each
stage evaluates its system prompt again after another stage's call replaced it. `PrefixStates` keeps the KV of
each stage's static prefix (the chat text up to the user message) and loads it back before a call, so that only
the variable part is evaluated.

Sequence 0's KV cells are copied with llama.cpp's `llama_state_seq_get_data`/`set_data` rather than
llama-cpp-python's `save_state`/`LlamaRAMCache`: those also copy the logits buffer (n_batch x n_vocab floats, ~100 MB
for SmolLM2) on every call, and they key states by whole prompts, so a new user message never hits.
"""

from __future__ import annotations

import ctypes
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any


class PrefixStates:
    """An LRU of (prefix tokens -> KV bytes of sequence 0), bounded by `capacity_bytes`."""

    def __init__(self, capacity_bytes: int) -> None:
        self.capacity_bytes = capacity_bytes
        self._states: OrderedDict[tuple[int, ...], bytes] = OrderedDict()
        self.hits = 0
        self.saves = 0

    @property
    def size_bytes(self) -> int:
        return sum(len(v) for v in self._states.values())

    def prepare(self, llama: Any, tokens: Sequence[int], prefix_len: int) -> tuple[int, int]:
        """Leave llama's KV cache holding at least `tokens[:prefix_len]`, loaded when kept, evaluated (and kept)
        otherwise. Returns (leading tokens that needed no evaluation, leading tokens the KV cache now holds).
        Caller holds the model's lock."""
        import llama_cpp

        prefix_len = min(prefix_len, len(tokens) - 1)  # the last token is always evaluated, for its logits
        held = llama.longest_token_prefix(llama._input_ids[: llama.n_tokens].tolist(), list(tokens))
        if prefix_len <= 0 or held >= prefix_len or self.capacity_bytes <= 0:
            return held, held
        key = tuple(tokens[:prefix_len])
        ctx = llama._ctx.ctx
        state = self._states.get(key)
        if state is not None:
            self._states.move_to_end(key)
            buf = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
            if llama_cpp.llama_state_seq_set_data(ctx, buf, len(state), 0) == len(state):
                llama.input_ids[:prefix_len] = key
                llama.n_tokens = prefix_len
                self.hits += 1
                return prefix_len, prefix_len
            llama.reset()  # a failed load leaves the KV cache undefined: evaluate from scratch
            held = 0
        reused = held
        llama.n_tokens = held
        llama.eval(list(tokens[held:prefix_len]))
        size = int(llama_cpp.llama_state_seq_get_size(ctx, 0))
        buf = (ctypes.c_uint8 * size)()
        written = int(llama_cpp.llama_state_seq_get_data(ctx, buf, size, 0))
        if 0 < written <= self.capacity_bytes:
            self._states[key] = bytes(buf)[:written]
            self.saves += 1
            while self.size_bytes > self.capacity_bytes:
                self._states.popitem(last=False)
        return reused, prefix_len
