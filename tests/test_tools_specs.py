"""The tool registry: one definition per tool, validated arguments, user binding, model-facing text."""

from __future__ import annotations

import pytest

from interestlens.agent.errors import InvalidInputError
from interestlens.agent.models import (
    EvidenceSpan,
    InterestProfile,
    Item,
    ObserveResult,
    Recommendation,
    RecommendationResult,
    StageStats,
    SubInterest,
)
from interestlens.tools.render import render_text
from interestlens.tools.specs import TOOLS, TOOLS_BY_NAME, ForgetResult, get_tool


def test_registry_names_and_models():
    assert [t.name for t in TOOLS][:5] == ["observe", "profile", "recommend", "explain", "forget"]
    assert {t.name for t in TOOLS} >= {
        "feedback",
        "edit_profile",
        "history",
        "export",
        "catalog_list",
        "catalog_get",
        "catalog_search",
        "catalog_count",
        "catalog_remove",
    }
    for t in TOOLS:
        assert t.description
        if not t.name.startswith("catalog_"):  # catalog verbs act on no user
            assert t.args_model.model_json_schema()["properties"]["user_id"]["pattern"]
    assert TOOLS_BY_NAME["forget"].destructive and not TOOLS_BY_NAME["recommend"].destructive


@pytest.mark.parametrize(
    ("tool", "args", "fragment"),
    [
        ("recommend", {"user_id": "u1", "k": 0}, "k:"),
        ("recommend", {"user_id": "u1", "k": 101}, "k:"),
        ("recommend", {"user_id": "u1", "expand": ["sideways"]}, "expand.0"),
        ("recommend", {"user_id": "bad id!"}, "user_id"),
        ("observe", {"user_id": "u1", "texts": []}, "texts"),
        ("observe", {"user_id": "u1", "texts": ["x"], "mood": "happy"}, "mood"),
        ("explain", {"user_id": "u1"}, "item_id"),
    ],
)
def test_invalid_arguments_are_clear_errors(tool, args, fragment):
    with pytest.raises(InvalidInputError, match=f"invalid arguments for {tool}: .*{fragment}"):
        get_tool(tool).parse_args(args)


def test_unknown_tool():
    with pytest.raises(InvalidInputError, match="unknown tool 'nope'"):
        get_tool("nope")


def test_user_binding_injects_and_refuses_other_users():
    spec = TOOLS_BY_NAME["recommend"]
    assert "user_id" not in spec.schema_model(user_bound=True).model_json_schema()["properties"]
    args = spec.parse_args({"k": 3, "expand": ["adjacent"]}, user_id="alice")
    assert (args.user_id, args.k, args.expand) == ("alice", 3, ["adjacent"])
    with pytest.raises(InvalidInputError, match="bound to user 'alice'"):
        spec.parse_args({"user_id": "bob"}, user_id="alice")


def test_render_text_quotes_evidence_and_ranks():
    span = EvidenceSpan(source_id="s1", start=0, end=24, text="I adore slow-burn sci-fi")
    item = Item(id="b1", title="Solaris", text="Solaris. A slow, haunting novel.")
    result = RecommendationResult(
        user_id="u1",
        context="rainy evening",
        recommendations=[
            Recommendation(
                item=item,
                score=0.9,
                rank=1,
                justification="Matches your love of slow sci-fi.",
                cited_evidence=[span],
                item_facts=["A slow, haunting novel."],
            ),
        ],
    )
    text = render_text(result)
    assert text.splitlines()[0] == 'Recommendations for u1 (context: "rainy evening"):'
    assert "1. Solaris [b1]" in text and 'evidence: "I adore slow-burn sci-fi"' in text
    assert "why: " in text and "Matches your love of" in text  # fenced as data (helper A)
    assert "none found" in render_text(RecommendationResult(user_id="u1"))

    interest = SubInterest(name="slow-burn sci-fi", evidence=[span])
    obs = render_text(ObserveResult(user_id="u1", added=[interest], profile_version=2))
    assert "added: + slow-burn sci-fi" in obs and '"I adore slow-burn sci-fi"' in obs
    prof = render_text(InterestProfile(user_id="u1", interests=[interest], version=2))
    assert "Profile of u1 (version 2, 1 interests)" in prof
    assert render_text(ForgetResult(user_id="u1")) == "Forgot everything stored about u1."
    assert "Nothing was stored about u1" in render_text(ForgetResult(user_id="u1", forgotten=False))


def test_text_output_carries_warnings_and_llm_cost():
    """Warnings reach the host model, and where an LLM ran the text says what it cost (issue 14, item 7)."""
    rec = Recommendation(
        item=Item(id="b1", title="Blue Train", text="A record."), score=0.5, rank=1, justification="ok"
    )
    stats = StageStats(
        llm_calls=2,
        prompt_tokens=1674,
        completion_tokens=231,
        warnings=["retrieve: 3 candidate(s) removed as too close to a dislike"],
    )
    text = render_text(RecommendationResult(user_id="alice", recommendations=[rec], stats=stats))
    assert "note: retrieve: 3 candidate(s) removed as too close to a dislike" in text
    assert "llm: 2 call(s), 1674 prompt + 231 completion tokens" in text
    plain = render_text(RecommendationResult(user_id="alice", recommendations=[rec]))
    assert "llm:" not in plain and "note:" not in plain
    observed = render_text(
        ObserveResult(
            user_id="alice", profile_version=1, stats=StageStats(llm_calls=1, prompt_tokens=277, completion_tokens=38)
        )
    )
    assert "llm: 1 call(s), 277 prompt + 38 completion tokens" in observed
