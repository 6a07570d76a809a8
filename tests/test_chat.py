"""`interestlens chat` driven through stdin in a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys

from interestlens.tools.chat import wants_recommendations


def test_intent_detection():
    assert wants_recommendations("Can you recommend a film?")
    assert wants_recommendations("what should I read next")
    assert wants_recommendations("any ideas?")
    assert not wants_recommendations("I loved Interstellar.")


def test_chat_session(tmp_path, embedder, demo_items):
    from interestlens.agent.config import Settings
    from interestlens.agent.service import InterestAgent

    store = str(tmp_path / "store")
    with InterestAgent(Settings(store=store, llm="none"), llm=None, embedder=embedder) as a:
        a.add_items(demo_items[:80])
    script = (
        "\n".join(
            [
                "/profile",
                "I love slow-burn science fiction like Interstellar, where space feels huge and lonely.",
                "What should I watch tonight?",
                "/profile",
                "/bogus",
                "/forget",
                "/profile",
                "/quit",
                "this line is never read",
            ]
        )
        + "\n"
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "interestlens.tools.cli",
            "--store",
            store,
            "--llm",
            "none",
            "chat",
            "--user",
            "carol",
        ],
        input=script,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"},
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "interestlens chat as carol" in text
    assert text.count("No profile yet") == 2  # before observing and after /forget
    assert "Recommendations for carol" in text and "1. " in text
    assert "Profile of carol" in text
    assert "unknown command /bogus" in text
    assert "Forgot everything about carol." in text
    assert text.rstrip().endswith("bye.")


def test_chat_uses_messages_feedback_and_history(tmp_path, embedder, demo_items):
    """In process (real agent, real Chroma): requests are not interests, "more like that" links the suggestion."""
    import io

    from rich.console import Console

    from interestlens.agent.config import Settings
    from interestlens.agent.service import InterestAgent
    from interestlens.tools.chat import run_chat

    with InterestAgent(Settings(store=str(tmp_path / "s"), llm="none"), llm=None, embedder=embedder) as a:
        a.add_items(demo_items[:80])
        script = "\n".join([
            "I adore mellow late-night jazz records.",
            "what should I listen to tonight?",
            "yes, more like that",
            "/history",
            "/undo",
            "/seen mov-0001",
            "/seen no-such-item",
            "/quit",
        ]) + "\n"
        out = io.StringIO()
        run_chat(a, "dana", k=3, stdin=io.StringIO(script), console=Console(file=out, width=200))
        text = out.getvalue()
        profile = a.profile("dana")
    assert "Recommendations for dana" in text
    assert "likes listen" not in text and not any("listen" in i.name.lower() for i in profile.interests)
    assert "History of dana" in text and "observe" in text
    assert "mov-0001" in profile.history  # /seen
    assert "error: unknown item id" in text  # a bad id is one clear line, the loop goes on
    assert text.rstrip().endswith("bye.")
