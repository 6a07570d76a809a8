"""`store copy`: an embedded store moved to a real `chroma run` server and back loses nothing (issue 13, item 6)."""

from __future__ import annotations

import json

import pytest
from _chroma_server import running_chroma_server

from interestlens.agent.config import Settings
from interestlens.agent.errors import InvalidInputError
from interestlens.agent.service import InterestAgent
from interestlens.stores.chroma_store import ChromaStore
from interestlens.stores.store_copy import copy_store
from interestlens.tools.cli import main


def _snapshot(agent: InterestAgent, user: str) -> dict:
    # last_result: recommend below rewrites it
    export = agent.export_user(user).model_dump(mode="json", exclude={"exported_at", "last_result"})
    return {
        "export": export,
        "items": agent.store.count_items(),
        "recommend": [r.item.id for r in agent.recommend(user, k=5).recommendations],
        "popularity": agent.store.popularity_scores(),
    }


def test_copy_embedded_to_server_and_back(tmp_path, demo_items, capsys):
    src_dir, back_dir = tmp_path / "embedded", tmp_path / "back"
    agent = InterestAgent(Settings(store=str(src_dir), llm="none"))
    try:
        agent.add_items(demo_items)
        agent.store.add_interactions([{"user_id": "crowd", "item_id": demo_items[3].id}])
        agent.observe("ann", "I really love jazz records. I can't stand horror movies.")
        agent.feedback("ann", demo_items[0].id, "liked", note="great pick")
        before = _snapshot(agent, "ann")
    finally:
        agent.close()

    with running_chroma_server(tmp_path / "server") as url:
        with InterestAgent(Settings(store=str(src_dir), llm="none")) as src:
            dst = ChromaStore(url, src.embedder, state_dir=tmp_path / "state")
            try:
                report = copy_store(src.store, dst)
                with pytest.raises(InvalidInputError, match="not empty"):  # never over what is there
                    copy_store(src.store, dst)
            finally:
                dst.close()
        assert report.records["items"] == len(demo_items) and report.interactions == 2  # crowd + feedback
        with InterestAgent(Settings(store=url, llm="none")) as on_server:
            got = _snapshot(on_server, "ann")
            for key in before["export"]:
                assert got["export"][key] == before["export"][key], key
            assert got == before
        assert main(["--json", "store", "copy", url, str(back_dir)]) is None
        # Two clients of the one server agree: feedback through one changes what the other recommends.
        with (
            InterestAgent(Settings(store=url, llm="none")) as one,
            InterestAgent(Settings(store=url, llm="none")) as two,
        ):
            top = [r.item.id for r in two.recommend("ann", k=3).recommendations]
            one.feedback("ann", top[0], "seen")
            one.feedback("bo", top[1], "liked")
            assert top[0] not in [r.item.id for r in two.recommend("ann", k=3).recommendations]
            assert top[1] in two.store.popularity_scores() and two.store.user_interacted_items("bo") == [top[1]]
    assert json.loads(capsys.readouterr().out)["records"]["history"] == report.records["history"]
    with InterestAgent(Settings(store=str(back_dir), llm="none")) as back:
        assert _snapshot(back, "ann") == before
