"""What the store keeps in memory between calls gives the same answers as a fresh read.

The catalog's vectors and count are trusted in embedded mode until this process writes the catalog (a write
counter shared by every handle of the directory, stores/items.py); interest records are kept by their content
digest (stores/profile_commits.py). Both must stay invisible: a second handle's write is seen, a deleted user's
records are not kept, and a cached read equals what a new handle reads from disk.
"""

from __future__ import annotations

import numpy as np

from interestlens.agent.models import InterestProfile, Item, SubInterest
from interestlens.stores.chroma_store import ChromaStore
from interestlens.stores.items import item_embedding_text

ITEMS = [
    Item(id="a1", title="Dune", text="A desert planet, spice and empire: epic science fiction."),
    Item(id="a2", title="Salt Fat Acid Heat", text="A cookbook teaching the four elements of good cooking."),
]
LATER = Item(id="a3", title="Solaris", text="A sentient ocean planet and the scientists who study it.")


def test_a_catalog_write_through_another_handle_is_seen(tmp_path, embedder):
    path = str(tmp_path / "store")
    reader = ChromaStore(path, embedder)
    writer = ChromaStore(path, embedder)  # same process, same directory: the lock is shared
    try:
        reader.upsert_items(ITEMS)
        q = embedder.embed([item_embedding_text(LATER)])
        assert reader.count_items() == 2
        assert {i for i, _ in reader.query_items(q, n=5)[0]} == {"a1", "a2"}  # vectors and count now held
        writer.upsert_items([LATER])
        assert reader.count_items() == 3
        assert reader.query_items(q, n=1)[0][0][0] == "a3"
        assert set(reader.item_embeddings(["a3"])) == {"a3"}
        writer.delete_items(["a3"])
        assert reader.count_items() == 2
        assert "a3" not in {i for i, _ in reader.query_items(q, n=5)[0]}
    finally:
        writer.close()
        reader.close()


def _profile(user: str, names: list[str], version: int) -> InterestProfile:
    return InterestProfile(user_id=user, interests=[SubInterest(name=n) for n in names], version=version)


def test_cached_profile_reads_equal_a_fresh_handle(tmp_path, embedder):
    path = str(tmp_path / "store")
    store = ChromaStore(path, embedder)
    try:
        store.save_profile(_profile("u1", ["sea shanties", "chess openings", "sourdough"], 1))
        store.interest_embeddings("u1")  # held from here on
        store.save_profile(_profile("u1", ["sea shanties", "sourdough", "film noir"], 2))
        cached = (store.load_profile("u1"), store.interest_embeddings("u1"))
    finally:
        store.close()
    fresh_store = ChromaStore(path, embedder)
    try:
        fresh = (fresh_store.load_profile("u1"), fresh_store.interest_embeddings("u1"))
    finally:
        fresh_store.close()
    assert cached[0] == fresh[0]
    assert [i.name for i in cached[0].interests] == ["sea shanties", "sourdough", "film noir"]
    assert list(cached[1]) == list(fresh[1]) == [i.id for i in fresh[0].interests]
    assert all(np.array_equal(cached[1][k], fresh[1][k]) for k in fresh[1])


def test_a_deleted_user_leaves_nothing_in_memory(store):
    store.save_profile(_profile("gone", ["birdwatching", "jazz piano"], 1))
    assert store.load_profile("gone") is not None and store.interest_embeddings("gone")
    store.delete_user("gone", purge=False)
    assert store.load_profile("gone") is None and store.interest_embeddings("gone") == {}
    held = store._profile_commits._cache._records
    assert not [rid for rid in held if rid.startswith("gone/")]
