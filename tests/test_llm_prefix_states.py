"""Kept KV states of static prompt prefixes (agent/llm/llamacpp_prefix.py), on the packaged GGUF model.

What the design guarantees, independent of what the model writes: after another stage's call, a stage's system
prefix is loaded rather than evaluated; the scores from a loaded prefix are the ones from an evaluated prefix; the
memory bound holds; 0 turns it off.
"""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import BaseModel

from interestlens.agent.llm import LlamaCppLLM, default_gguf_path
from interestlens.agent.prompting import RenderedPrompt

pytestmark = pytest.mark.slow

LABELS = ["A", "B", "C", "D"]
STAGE_A = "You rank candidates for a user who likes jazz piano and heist films. Answer with one letter. " * 3
STAGE_B = "You name a topic in two words. Answer with JSON only. " * 3


class Name(BaseModel):
    name: str


def _scoring(user: str) -> RenderedPrompt:
    return RenderedPrompt(system=STAGE_A, user=user, version="test@1")


def _other() -> RenderedPrompt:
    return RenderedPrompt(system=STAGE_B, user="mellow late-night records", version="test@1")


def _llm(cache_mb: int) -> LlamaCppLLM:
    return LlamaCppLLM(default_gguf_path(), n_ctx=1024, n_threads=1, prompt_cache_mb=cache_mb)


def _static_len(llm: LlamaCppLLM, prompt: RenderedPrompt) -> int:
    messages, _ = llm._fit_messages(prompt, 1)
    return llm._prompt_tokens(messages)[1]


def test_static_prefix_is_the_system_part_of_the_chat_text():
    llm = _llm(64)
    try:
        one, two = _scoring("(A) Kind of Blue (B) Heat"), _scoring("(A) Rififi (B) Blue Train (C) Ronin")
        n = _static_len(llm, one)
        assert n == _static_len(llm, two) > llm.count_tokens(STAGE_A)  # the system text plus its role markers
        tokens_one = llm._prompt_tokens(llm._fit_messages(one, 1)[0])[0]
        tokens_two = llm._prompt_tokens(llm._fit_messages(two, 1)[0])[0]
        assert tokens_one[:n] == tokens_two[:n] and tokens_one[n:] != tokens_two[n:]
    finally:
        llm.close()


def test_a_stage_prefix_is_loaded_after_another_stage_and_scores_the_same():
    llm = _llm(64)
    try:
        first = _scoring("(A) Kind of Blue (B) Heat (C) Alien (D) Rififi\nWhich one?")
        static = _static_len(llm, first)
        cold = llm.score_labels(first, LABELS)
        assert cold.usage.cached_prompt_tokens == 0
        llm.generate(_other(), Name, max_tokens=16)  # replaces the KV cache with stage B's prompt
        again = llm.score_labels(first, LABELS)
        assert again.usage.cached_prompt_tokens == static
        assert llm._prefix_states.hits == 1
        # A loaded prefix is the evaluated one, so the scores are the same numbers.
        assert np.allclose([again[x] for x in LABELS], [cold[x] for x in LABELS], atol=1e-5)
        # A new user message of the same stage also starts from the kept prefix.
        llm.generate(_other(), Name, max_tokens=16)  # stage B's own prefix is loaded back this time
        hits = llm._prefix_states.hits
        other_user = llm.score_labels(_scoring("(A) Ronin (B) Blue Train (C) Heat (D) Alien\nWhich one?"), LABELS)
        assert other_user.usage.cached_prompt_tokens == static and llm._prefix_states.hits == hits + 1
    finally:
        llm.close()


def test_generation_calls_reuse_the_kept_prefix_too():
    llm = _llm(64)
    try:
        llm.generate(_other(), Name, max_tokens=16)
        llm.score_labels(_scoring("(A) Heat (B) Alien\nWhich one?"), LABELS)
        reply = llm.generate(_other(), Name, max_tokens=16)
        assert isinstance(reply.value, Name)
        assert llm._prefix_states.hits == 1
    finally:
        llm.close()


def test_zero_turns_it_off():
    llm = _llm(0)
    try:
        prompt = _scoring("(A) Heat (B) Alien\nWhich one?")
        llm.score_labels(prompt, LABELS)
        llm.generate(_other(), Name, max_tokens=16)
        again = llm.score_labels(prompt, LABELS)
        assert again.usage.cached_prompt_tokens < _static_len(llm, prompt)
        assert llm._prefix_states.size_bytes == 0
    finally:
        llm.close()


def test_memory_stays_within_the_bound():
    llm = _llm(64)
    try:
        llm.score_labels(_scoring("(A) Heat (B) Alien\nWhich one?"), LABELS)
        one_state = llm._prefix_states.size_bytes
        assert one_state > 0
        # Room for one state: the second stage's evicts the first's, and a state over the bound is never kept.
        llm._prefix_states.capacity_bytes = int(one_state * 1.5)
        llm.generate(_other(), Name, max_tokens=16)
        assert 0 < llm._prefix_states.size_bytes <= llm._prefix_states.capacity_bytes
        llm._prefix_states.capacity_bytes = one_state // 4
        llm.score_labels(_scoring("(A) Rififi (B) Ronin\nWhich one?"), LABELS)
        assert llm._prefix_states.size_bytes <= one_state * 1.5
        llm.generate(_other(), Name, max_tokens=16)  # still answers without a kept state
    finally:
        llm.close()
