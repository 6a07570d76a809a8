"""ChromaStore against a real `chroma run` server (HttpClient): test_store.py's core checks, plus sharing.

Each test uses its own collection namespace on the session's server and its own local state directory.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid

import pytest
from test_store import (
    CATALOG,
    check_bad_input_loses_nothing,
    check_delete_user,
    check_profiles,
    check_query,
    check_side_data,
    check_upsert_idempotent,
    make_profile,
)

from interestlens.agent.errors import StoreError
from interestlens.agent.models import Interaction
from interestlens.stores.chroma_store import ChromaStore


@pytest.fixture
def http_store(chroma_server, embedder, tmp_path):
    s = ChromaStore(
        chroma_server, embedder, namespace="t" + uuid.uuid4().hex[:12], state_dir=tmp_path / "state"
    )
    yield s
    s.close()


def test_http_upsert_idempotent(http_store, embedder):
    assert http_store.mode == "http"
    check_upsert_idempotent(http_store, embedder)


def test_http_query_and_where(http_store, embedder):
    check_query(http_store, embedder)


def test_http_profiles(http_store, embedder):
    check_profiles(http_store, embedder)


def test_http_side_data(http_store):
    check_side_data(http_store)


def test_http_delete_user_leaves_nothing(http_store):
    check_delete_user(http_store)


def test_http_bad_input_loses_nothing(http_store):
    check_bad_input_loses_nothing(http_store)


def test_http_interactions_are_shared_by_every_client(http_store, chroma_server, embedder, tmp_path):
    """One truth in server mode: behaviour lives on the server, so a second client (its own state dir) sees it."""
    other = ChromaStore(chroma_server, embedder, namespace=http_store.namespace, state_dir=tmp_path / "other")
    try:
        assert other.popularity_scores() == {}
        assert http_store.add_interactions(
            [Interaction(user_id="u1", item_id="a"), Interaction(user_id="u1", item_id="b")]
        ) == 2
        assert http_store.add_interactions([Interaction(user_id="u1", item_id="a")]) == 0  # idempotent
        assert list(other.cooccurrence_scores(["a"])) == ["b"]  # the other client's cache notices the write
        assert other.add_interactions([Interaction(user_id="u2", item_id="b", value=-1.0)]) == 1
        assert http_store.behaviour.count() == 3 and http_store.behaviour.count("u2") == 1
        assert http_store.user_interacted_items("u1") == ["a", "b"]
        assert set(http_store.popularity_scores()) == {"a", "b"}  # u2's dislike is no consumption
        http_store.delete_user("u1")
        assert other.user_interacted_items("u1") == [] and other.behaviour.count() == 1
        assert not (tmp_path / "state").exists() or not any((tmp_path / "state").rglob("*.sqlite3"))
    finally:
        other.close()


READER = textwrap.dedent("""
    import sys
    from interestlens.stores.chroma_store import ChromaStore

    class NoEmbedder:  # reading needs no vectors; the store only checks the model id and dimension
        model_id = "all-MiniLM-L6-v2"
        dim = 384
        def embed(self, texts):
            raise AssertionError("reader must not embed")

    s = ChromaStore(sys.argv[1], NoEmbedder(), namespace=sys.argv[2], state_dir=sys.argv[3])
    p = s.load_profile("shared")
    print(s.count_items(), p.version, ",".join(i.name for i in p.interests))
""")


def test_http_store_is_shared_between_processes(http_store, tmp_path):
    """Unlike an embedded directory, a server can be used by several processes at once."""
    http_store.upsert_items(CATALOG)
    http_store.save_profile(make_profile("shared", 3, ["jazz", "cooking"]))
    r = subprocess.run(
        [sys.executable, "-c", READER, http_store.location, http_store.namespace, str(tmp_path / "other")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(len(CATALOG)), "3", "jazz,cooking"]


def test_unreachable_server_is_a_clear_error(embedder, tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(StoreError, match="chroma run"):
        ChromaStore(f"http://127.0.0.1:{port}", embedder, state_dir=tmp_path)


def test_http_a_catalog_change_by_another_client_is_seen(http_store, embedder, tmp_path):
    """Each client keeps the catalog's vectors in memory for exact search; another client's write must reach it."""
    from interestlens.agent.models import Item
    from interestlens.stores.items import item_embedding_text

    http_store.upsert_items(CATALOG)
    q = embedder.embed(["a cookbook of quick weeknight dinners"])
    first = http_store.query_items(q, n=1)[0][0][0]  # loads this client's copy of the vectors
    other = ChromaStore(http_store.location, embedder, namespace=http_store.namespace, state_dir=tmp_path / "other")
    try:
        moved = Item(id="m1", title="Weeknight", text="a cookbook of quick weeknight dinners")
        other.upsert_items([moved])
        assert http_store.query_items(q, n=1)[0][0][0] == "m1" != first
        got = http_store.item_embeddings(["m1"])["m1"]
        assert got == pytest.approx(embedder.embed([item_embedding_text(moved)])[0], abs=1e-5)
        other.delete_items(["m1"])
        assert "m1" not in {i for i, _ in http_store.query_items(q, n=len(CATALOG))[0]}
    finally:
        other.close()
