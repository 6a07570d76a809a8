"""Decompose by labelling with the real packaged SmolLM2: evidence is a clause, labels are an enum.

Nothing here depends on which label the model picks: only that every interest is grounded verbatim in one
clause, names are short, "none" clauses never become interests, and bad or dead backends fall back.
"""

from __future__ import annotations

import pytest
from _scripted_llm import ScriptedLLM
from pydantic import ValidationError

from interestlens.agent.decompose import decompose
from interestlens.agent.decompose_llm import (
    MAX_CLAUSES_PER_CALL,
    MAX_TOPIC_WORDS,
    TOKENS_PER_CLAUSE,
    LLMDecomposer,
    labels_model,
)
from interestlens.agent.models import Polarity, SourceText, StageStats
from interestlens.agent.result_cache import DictCache

CHAT = [
    "Hello! I love slow-burn science fiction films like Interstellar.",
    "I can't stand horror movies, they are just gross.",
    "What would you recommend for tonight?",
]


def _grounded(out, sources):
    by_id = {s.id: s for s in sources}
    for it in out:
        assert it.evidence
        for span in it.evidence:
            assert by_id[span.source_id].text[span.start : span.end] == span.text


def test_labels_model_is_an_enum_of_clause_numbers():
    model = labels_model(3)
    model.model_validate({"clauses": [{"n": 3, "label": "like", "topic": "jazz"}]})
    for bad in ({"clauses": [{"n": 4, "label": "like", "topic": "x"}]},
                {"clauses": [{"n": 1, "label": "love", "topic": "x"}]},
                {"clauses": [{"n": 1, "label": "like", "topic": "x" * 41}]}):
        with pytest.raises(ValidationError):
            model.model_validate(bad)


def test_none_clauses_are_dropped_and_topics_clipped(embedder, settings):
    src = SourceText(text="I adore mellow late-night jazz records. My brother says hi.")
    llm = ScriptedLLM(['{"clauses": [{"n": 1, "label": "like", "topic": "mellow late night jazz records now"},'
                       ' {"n": 2, "label": "none", "topic": ""}]}'])
    stats = StageStats()
    out = LLMDecomposer(llm, embedder, settings, complement=True).decompose([src], stats)
    _grounded(out, [src])
    assert len(llm.prompts) == 1 and stats.llm_calls == 1
    assert [i.polarity for i in out] == [Polarity.LIKE]
    assert len(out[0].name.split()) <= MAX_TOPIC_WORDS and "brother" not in out[0].evidence[0].text
    assert out[0].extractor == "llm:scripted"


def test_invalid_twice_falls_back_to_clusters(embedder, settings):
    src = SourceText(text="I adore mellow late-night jazz records.")
    llm = ScriptedLLM(["not json", '{"clauses": [{"n": 9}]}'])
    stats = StageStats()
    out = LLMDecomposer(llm, embedder, settings).decompose([src], stats)
    assert out and all(i.extractor == "cluster" for i in out)
    assert stats.llm_calls == 2 and stats.invalid_outputs == 2 and stats.fallbacks == 1


@pytest.mark.slow
def test_labelling_with_packaged_model_is_grounded(tiny_llm, embedder, settings):
    sources = [SourceText(text=t) for t in CHAT]
    stats = StageStats()
    cache = DictCache()
    out = decompose(sources, llm=tiny_llm, embedder=embedder, settings=settings, stats=stats, cache=cache,
                    user_id="u1")
    _grounded(out, sources)
    assert 1 <= stats.llm_calls <= 2  # one chunk: one call (and at most one retry)
    for it in out:
        assert it.extractor in (f"llm:{tiny_llm.model_id}", "cluster")
        assert "recommend" not in " ".join(e.text for e in it.evidence).lower()  # a request is never evidence
    # a few tokens per clause, not copied quotes: each call's budget (twice: a cut reply is asked again once)
    assert stats.completion_tokens <= stats.llm_calls * 2 * (20 + TOKENS_PER_CLAUSE * MAX_CLAUSES_PER_CALL)
    again = StageStats()
    decompose(sources, llm=tiny_llm, embedder=embedder, settings=settings, stats=again, cache=cache, user_id="u1")
    assert again.llm_calls == 0  # the cache is keyed by the rendered prompt and the schema
