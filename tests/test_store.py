"""ChromaStore against real embedded Chroma (PersistentClient), with real MiniLM vectors.

Subprocess tests (crash safety, restart, multi-process lock) serve MiniLM vectors precomputed by the parent
from a table, because loading the model in every child would dominate the run time; the store code under
test is unchanged. The `check_*` helpers are shared with test_store_server.py, which runs them against a
real `chroma run` server.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from interestlens.agent.errors import InvalidInputError, StoreError, UnknownIdError
from interestlens.agent.models import (
    Intent,
    Interaction,
    InterestProfile,
    Item,
    Polarity,
    RecommendationResult,
    SourceText,
    SubInterest,
)
from interestlens.agent.profile import interest_text
from interestlens.stores.chroma_store import ChromaStore
from interestlens.stores.items import item_embedding_text
from interestlens.stores.profile_commits import record_id
from interestlens.stores.vectors import DUMMY

CATALOG = [
    Item(
        id="b1",
        title="Dune",
        text="A desert planet, spice and empire: epic science fiction novel.",
        metadata={"domain": "books", "genres": ["sci-fi", "classic"], "year": 1965},
    ),
    Item(
        id="b2",
        title="The Left Hand of Darkness",
        text="Science fiction about an envoy on an icy alien world.",
        metadata={"domain": "books", "genres": ["sci-fi"], "year": 1969},
    ),
    Item(
        id="b3",
        title="Salt Fat Acid Heat",
        text="A cookbook teaching the four elements of good cooking.",
        metadata={"domain": "books", "genres": ["cooking"], "year": 2017},
    ),
    Item(
        id="m1",
        title="Kind of Blue",
        text="Miles Davis modal jazz album with Coltrane and Bill Evans.",
        metadata={"domain": "music", "genres": ["jazz"], "year": 1959},
    ),
    Item(
        id="m2",
        title="A Love Supreme",
        text="John Coltrane spiritual jazz suite in four parts.",
        metadata={"domain": "music", "genres": ["jazz", "spiritual"], "year": 1965},
    ),
    Item(
        id="f1",
        title="Interstellar",
        text="Astronauts travel through a wormhole near Saturn to save humanity.",
        metadata={"domain": "movies", "genres": ["sci-fi", "drama"], "year": 2014},
    ),
    Item(
        id="p1",
        title="The Splendid Table",
        text="A podcast about food, recipes and home cooking.",
        metadata={"domain": "podcasts", "genres": ["cooking"], "tags": [], "rating": 4.5},
    ),
    Item(
        id="g1",
        title="Outer Wilds",
        text="Explore a solar system stuck in a time loop; space exploration game.",
        metadata={"domain": "games", "genres": ["sci-fi", "exploration"], "year": 2019, "indie": True},
    ),
]


class CountingEmbedder:
    """The real embedder, counting the texts it embeds (to prove unchanged items are not re-embedded)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.dim = inner.dim
        self.texts: list[str] = []

    def embed(self, texts):
        self.texts.extend(texts)
        return self.inner.embed(texts)


def make_profile(user_id: str, version: int, names: list[str], dislike: str | None = None) -> InterestProfile:
    src = SourceText(text=" and ".join(names))
    interests = [
        SubInterest(
            name=n,
            description=f"likes {n}",
            weight=1.0 + k,
            confidence=0.7,
            evidence=[{"source_id": src.id, "start": 0, "end": len(names[0]), "text": names[0]}]
            if k == 0
            else [],
        )
        for k, n in enumerate(names)
    ]
    if dislike:
        interests.append(SubInterest(name=dislike, polarity=Polarity.DISLIKE))
    return InterestProfile(user_id=user_id, interests=interests, version=version, history=["b3"])


# ---- shared checks (embedded here, http in test_store_server.py) ----


def check_upsert_idempotent(store: ChromaStore, embedder) -> None:
    counting = CountingEmbedder(embedder)
    store.embedder = counting
    assert store.upsert_items(CATALOG) == len(CATALOG)
    assert store.count_items() == len(CATALOG)
    n_embedded = len(counting.texts)
    assert store.upsert_items(CATALOG) == 0
    assert len(counting.texts) == n_embedded  # unchanged items are not re-embedded
    changed = CATALOG[0].model_copy(update={"text": "Dune: politics, ecology and prophecy on Arrakis."})
    assert store.upsert_items([changed, *CATALOG[1:]]) == 1
    assert counting.texts[n_embedded:] == ["Dune: politics, ecology and prophecy on Arrakis."]
    assert store.count_items() == len(CATALOG)
    assert store.get_item("b1") == changed
    # exact round trip, including metadata Chroma cannot hold (an empty list), order kept, unknown skipped
    assert store.get_items(["p1", "nope", "g1", "m1"]) == [CATALOG[6], CATALOG[7], CATALOG[3]]
    assert sorted(store.item_ids()) == sorted(i.id for i in CATALOG)
    assert sorted(i.id for i in store.iter_items(batch_size=3)) == sorted(i.id for i in CATALOG)
    embs = store.item_embeddings(["m2", "nope"])
    assert list(embs) == ["m2"]
    np.testing.assert_allclose(
        embs["m2"], embedder.embed(["A Love Supreme. " + CATALOG[4].text])[0], atol=1e-5
    )
    with pytest.raises(UnknownIdError):
        store.get_item("nope")
    store.embedder = embedder


def check_query(store: ChromaStore, embedder) -> None:
    store.upsert_items(CATALOG)
    q = embedder.embed(["jazz saxophone records", "space exploration science fiction"])
    jazz, space = store.query_items(q, n=5)
    assert {jazz[0][0], jazz[1][0]} == {"m1", "m2"}
    assert space[0][0] in {"g1", "f1", "b1", "b2"}
    for row in (jazz, space):
        sims = [s for _, s in row]
        assert sims == sorted(sims, reverse=True) and len(row) == 5
        assert all(-1.0 <= s <= 1.0001 for s in sims)
    # similarity is cosine: compare with a dot product of the stored vectors
    top_id, top_sim = jazz[0]
    assert top_sim == pytest.approx(float(store.item_embeddings([top_id])[top_id] @ q[0]), abs=1e-4)
    books = store.query_items(q[1], n=10, where={"domain": "books"})[0]
    assert {i for i, _ in books} == {"b1", "b2", "b3"}
    assert books[-1][0] == "b3"
    scifi = store.query_items(q[1], n=10, where={"genres": {"$contains": "sci-fi"}})[0]
    assert {i for i, _ in scifi} == {"b1", "b2", "f1", "g1"}
    both = store.query_items(q[1], n=10, where={"$and": [{"domain": "books"}, {"year": {"$lt": 1968}}]})[0]
    assert [i for i, _ in both] == ["b1"]
    assert store.query_items(q[0], n=5, where={"domain": "nothing"}) == [[]]
    assert len(store.query_items(q[0], n=1000)[0]) == len(CATALOG)
    with pytest.raises(InvalidInputError):
        store.query_items(np.zeros((1, 7), dtype=np.float32), n=3)
    with pytest.raises(InvalidInputError):
        store.query_items(q[0], n=3, where={"year": {"$bogus": 3}})


def check_profiles(store: ChromaStore, embedder) -> None:
    assert store.load_profile("alice") is None
    assert store.interest_embeddings("alice") == {}
    v1 = make_profile("alice", 1, ["jazz", "science fiction", "hiking"])
    store.save_profile(v1)
    assert store.load_profile("alice") == v1
    v2 = make_profile("alice", 2, ["jazz", "cooking"], dislike="horror movies")
    v2.interests[0].muted = True
    store.save_profile(v2)
    loaded = store.load_profile("alice")
    assert loaded == v2 and loaded.version == 2 and loaded.interests[0].muted
    # only the committed generation remains in the interests collection
    recs = store.collections()["interests"].get(where={"user_id": "alice"}, include=["metadatas"])
    assert len(recs["ids"]) == 3 and {m["version"] for m in recs["metadatas"]} == {2}
    embs = store.interest_embeddings("alice")
    assert set(embs) == {i.id for i in v2.interests}
    for it in v2.interests:
        np.testing.assert_allclose(embs[it.id], embedder.embed([interest_text(it)])[0], atol=1e-5)
    store.save_profile(make_profile("bob", 1, ["podcasts"]))
    assert store.list_users() == ["alice", "bob"]
    rows = store.all_interests()
    assert [(u, i.name) for u, i, _ in rows] == [
        ("alice", "jazz"),
        ("alice", "cooking"),
        ("alice", "horror movies"),
        ("bob", "podcasts"),
    ]
    assert all(e.shape == (embedder.dim,) for _, _, e in rows)
    store.save_profile(InterestProfile(user_id="alice", version=3))  # an empty profile is a valid state
    assert store.load_profile("alice").interests == []


def check_side_data(store: ChromaStore) -> None:
    a, b = (
        SourceText(text="I love modal jazz."),
        SourceText(text="Cooking is my weekend thing.", source="post"),
    )
    store.add_sources("alice", [a, b])
    store.add_sources("alice", [a])  # already stored: no duplicate, order kept
    store.add_sources("bob", [a])  # same text for another user is that user's own record
    assert store.get_sources("alice") == [a, b]
    assert store.get_sources("bob") == [a]
    assert store.get_sources("nobody") == []
    assert store.cache_get("alice", "decompose:v1:abc") is None
    store.cache_put("alice", "decompose:v1:abc", {"interests": [{"name": "jazz"}]})
    assert store.cache_get("alice", "decompose:v1:abc") == {"interests": [{"name": "jazz"}]}
    assert store.cache_get("bob", "decompose:v1:abc") is None
    result = RecommendationResult(
        user_id="alice", context="tonight", intents=[Intent(name="jazz", query="modal jazz albums")]
    )
    assert store.load_last_result("alice") is None
    store.save_last_result("alice", result)
    assert store.load_last_result("alice") == result


def populate_user(store: ChromaStore, uid: str) -> None:
    store.save_profile(make_profile(uid, 1, ["jazz", "space opera"]))
    store.save_profile(make_profile(uid, 2, ["jazz", "cooking"]))
    store.add_sources(uid, [SourceText(text=f"{uid} likes jazz")])
    store.cache_put(uid, "k", {"v": 1})
    store.save_last_result(uid, RecommendationResult(user_id=uid))
    store.add_interactions([Interaction(user_id=uid, item_id="m1"), Interaction(user_id=uid, item_id="m2")])


def user_traces(store: ChromaStore, uid: str) -> list[str]:
    """Every record anywhere in the Chroma database or the interaction file that mentions the user."""
    traces = []
    for col_model in store.client.list_collections():
        if store.namespace and not col_model.name.startswith(store.namespace + "_"):
            continue  # another test's namespace on a shared server
        col = store.client.get_collection(col_model.name)
        res = col.get(include=["metadatas", "documents"])
        for rid, meta, doc in zip(res["ids"], res["metadatas"], res["documents"], strict=True):
            if (
                (meta or {}).get("user_id") == uid
                or rid == uid
                or rid.startswith(uid + "/")
                or (doc and f'"user_id":"{uid}"' in doc)
            ):
                traces.append(f"{col.name}:{rid}")
    traces += [f"interaction:{r}" for r in store.behaviour.rows.user_rows(uid)]
    return traces


def check_delete_user(store: ChromaStore) -> None:
    populate_user(store, "carol")
    populate_user(store, "dave")
    assert len(user_traces(store, "carol")) >= 6
    store.delete_user("carol")
    assert user_traces(store, "carol") == []
    assert store.load_profile("carol") is None and store.get_sources("carol") == []
    assert store.cache_get("carol", "k") is None and store.load_last_result("carol") is None
    # the other user is untouched
    assert store.load_profile("dave").version == 2 and len(user_traces(store, "dave")) >= 6
    store.delete_user("carol")  # deleting again is a no-op


def check_bad_input_loses_nothing(store: ChromaStore) -> None:
    store.upsert_items(CATALOG)
    store.save_profile(make_profile("erin", 1, ["jazz"]))
    bad_batch = [*(i.model_dump() for i in CATALOG[:4]), {"id": "x1"}, CATALOG[5].model_dump()]
    bad_batch[0]["text"] = "changed text that must not be written"
    with pytest.raises(InvalidInputError, match="item #5"):
        store.upsert_items(bad_batch)
    assert store.get_item("b1") == CATALOG[0] and store.count_items() == len(CATALOG)
    for bad in ["", "a b", "x" * 129, "semi;colon", "slash/id", None]:
        with pytest.raises(InvalidInputError):
            store.load_profile(bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError):
            store.delete_user(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        store.save_profile(make_profile("bad user", 1, ["x"]))
    with pytest.raises(InvalidInputError):
        store.add_interactions(
            [Interaction(user_id="ok", item_id="m1"), Interaction(user_id="no way", item_id="m1")]
        )
    assert store.behaviour.count() == 0  # the good row of the rejected batch was not written either
    assert store.load_profile("erin").version == 1


# ---- embedded-mode tests ----


def test_upsert_idempotent_and_skips_unchanged(store, embedder):
    check_upsert_idempotent(store, embedder)


def test_interrupted_ingest_resumes_without_duplicates(store, embedder):
    items = [Item(id=f"i{k}", title=f"Item {k}", text=f"Item {k} about topic {k % 13}") for k in range(250)]

    def interrupted():
        for k, it in enumerate(items):
            if k == 180:
                raise KeyboardInterrupt
            yield it

    with pytest.raises(KeyboardInterrupt):
        store.upsert_items(interrupted(), batch_size=50)
    assert store.count_items() == 150  # three complete batches
    counting = CountingEmbedder(embedder)
    store.embedder = counting
    assert store.upsert_items(items, batch_size=50, progress=True) == 100
    assert len(counting.texts) == 100
    assert store.count_items() == 250


def test_query_order_and_where_filters(store, embedder):
    check_query(store, embedder)
    empty = ChromaStore(str(Path(store.location).parent / "empty"), embedder)
    try:
        assert empty.query_items(embedder.embed(["x"]), n=5) == [[]]
    finally:
        empty.close()


def test_profile_save_load_versioning(store, embedder):
    check_profiles(store, embedder)


def test_side_data(store):
    check_side_data(store)


def test_delete_user_leaves_nothing(store):
    check_delete_user(store)


def test_bad_input_loses_nothing(store):
    check_bad_input_loses_nothing(store)


def test_other_embedder_is_refused(tmp_path, embedder):
    ChromaStore(str(tmp_path / "s"), embedder).close()

    class Other(CountingEmbedder):
        pass

    other = Other(embedder)
    other.model_id = "other-model"
    with pytest.raises(StoreError, match="other-model"):
        ChromaStore(str(tmp_path / "s"), other)
    ChromaStore(str(tmp_path / "s"), embedder).close()  # the failed open released the directory lock


# ---- behaviour ----


def test_popularity_and_cooccurrence_on_a_small_graph(store):
    likes = {
        "u1": ["a", "b"],
        "u2": ["a", "b"],
        "u3": ["a", "b", "c"],
        "u4": ["b", "c"],
        "u5": ["d", "e"],
        "u6": ["d", "e"],
        "u7": ["e"],
    }
    rows = [Interaction(user_id=u, item_id=i, value=4.0) for u, items in likes.items() for i in items]
    assert store.add_interactions(rows) == len(rows)
    assert store.add_interactions(rows) == 0  # idempotent re-ingest
    pop = store.popularity_scores()
    assert pop["b"] == 1.0  # 4 users
    assert pop["a"] == pytest.approx(np.log1p(3) / np.log1p(4))
    assert pop["c"] == pytest.approx(np.log1p(2) / np.log1p(4))
    co = store.cooccurrence_scores(["a"])
    assert list(co) == ["b", "c"]  # b shares 3 users with a, c one; d/e none
    assert co["b"] == pytest.approx(3 / np.sqrt(3 * 4))
    assert co["c"] == pytest.approx(1 / np.sqrt(3 * 2))
    assert list(store.cooccurrence_scores(["d"])) == ["e"]
    summed = store.cooccurrence_scores(["a", "c"])
    assert "a" not in summed and "c" not in summed
    assert summed["b"] == pytest.approx(3 / np.sqrt(12) + 2 / np.sqrt(8))
    assert store.cooccurrence_scores(["a"], exclude={"b"}) == {"c": co["c"]}
    assert list(store.cooccurrence_scores(["a"], n=1)) == ["b"]
    assert store.cooccurrence_scores(["unknown"]) == {}
    # new interactions invalidate the cached matrices
    store.add_interactions([Interaction(user_id="u8", item_id="a"), Interaction(user_id="u8", item_id="d")])
    assert "d" in store.cooccurrence_scores(["a"])
    assert store.user_interacted_items("u8") == ["a", "d"]


def test_forget_of_a_user_without_interactions_keeps_the_behaviour_cache(store):
    """Only a real change of rows invalidates the matrices and EASE (each forget used to rebuild them)."""
    store.add_interactions([Interaction(user_id="u1", item_id="a"), Interaction(user_id="u2", item_id="a")])
    store.popularity_scores()
    cached, generation = store.behaviour._cache, store.behaviour.rows.generation()
    store.delete_user("nobody", purge=False)
    assert store.behaviour.rows.generation() == generation
    store.popularity_scores()
    assert store.behaviour._cache is cached
    store.delete_user("u1", purge=False)
    assert store.behaviour.rows.generation() != generation and store.popularity_scores() == {"a": 1.0}


def test_cooccurrence_scales_to_100k_interactions(store):
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 5000, 100_000), rng.zipf(1.3, 100_000) % 3000
    store.add_interactions(
        Interaction(user_id=f"u{u}", item_id=f"i{i}") for u, i in zip(users, items, strict=True)
    )
    top = store.cooccurrence_scores(["i1", "i2", "i3"], n=50)
    assert len(top) == 50 and not {"i1", "i2", "i3"} & set(top)
    assert list(top.values()) == sorted(top.values(), reverse=True)
    assert max(store.popularity_scores().values()) == 1.0


# ---- processes: crash safety, restart, lock ----

NAMES = [
    "modal jazz",
    "space opera",
    "slow cooking",
    "alpine hiking",
    "board games",
    "film noir",
    "true crime",
    "birdwatching",
]

CHILD_PRELUDE = textwrap.dedent("""
    import json, sys
    import numpy as np
    from interestlens.agent.models import Interaction, InterestProfile, Item, SourceText, SubInterest
    from interestlens.stores.chroma_store import ChromaStore

    class TableEmbedder:  # MiniLM vectors precomputed by the parent test
        model_id = "all-MiniLM-L6-v2"
        dim = 384
        def __init__(self, path):
            z = np.load(path)
            self.table = dict(zip(z["texts"].tolist(), z["vecs"]))
        def embed(self, texts):
            return np.stack([self.table[t] for t in texts])
""")

CRASH_CHILD = CHILD_PRELUDE + textwrap.dedent("""
    NAMES = json.loads(sys.argv[3])
    store = ChromaStore(sys.argv[1], TableEmbedder(sys.argv[2]), lock_timeout=30)
    v = int(sys.argv[4])
    print("ready", flush=True)
    while True:
        v += 1
        interests = [SubInterest(name=NAMES[(v + j) % len(NAMES)], weight=float(v)) for j in range(v % 4 + 1)]
        store.save_profile(InterestProfile(user_id="crash", version=v, interests=interests))
""")


@pytest.fixture(scope="module")
def vector_table(tmp_path_factory, embedder) -> Path:
    texts = [*NAMES, *(item_embedding_text(i) for i in CATALOG)]
    path = tmp_path_factory.mktemp("vectors") / "table.npz"
    np.savez(path, texts=np.array(texts), vecs=embedder.embed(texts))
    return path


def _run_child(code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout
    )


def test_profile_survives_sigkill_mid_save(tmp_path, embedder, vector_table):
    location = str(tmp_path / "crash-store")
    rng = random.Random(7)
    last_version, versions_seen = 0, set()
    for _ in range(10):
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                CRASH_CHILD,
                location,
                str(vector_table),
                json.dumps(NAMES),
                str(last_version),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout.readline().strip() == "ready", child.stderr.read()
            time.sleep(rng.uniform(0.05, 0.6))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
        store = ChromaStore(location, embedder, lock_timeout=30)
        try:
            profile = store.load_profile("crash")
            if profile is None:
                assert last_version == 0
                continue
            v = profile.version
            assert v >= last_version
            # never a mix: exactly the interests written for version v
            assert [i.name for i in profile.interests] == [
                NAMES[(v + j) % len(NAMES)] for j in range(v % 4 + 1)
            ]
            assert {i.weight for i in profile.interests} == {float(v)}
            assert set(store.interest_embeddings("crash")) == {i.id for i in profile.interests}
            assert [i.name for u, i, _ in store.all_interests() if u == "crash"] == [
                i.name for i in profile.interests
            ]
            last_version = v
            versions_seen.add(v)
        finally:
            store.close()
    assert len(versions_seen) >= 5  # the kills landed at many different points


WRITER_CHILD = CHILD_PRELUDE + textwrap.dedent("""
    catalog = [Item.model_validate(d) for d in json.loads(sys.argv[3])]
    store = ChromaStore(sys.argv[1], TableEmbedder(sys.argv[2]))
    store.upsert_items(catalog)
    store.save_profile(InterestProfile(user_id="restart", version=4,
                                       interests=[SubInterest(name="modal jazz"),
                                                  SubInterest(name="space opera")]))
    store.add_sources("restart", [SourceText(text="modal jazz forever")])
    store.cache_put("restart", "key", {"answer": 42})
    store.add_interactions([Interaction(user_id="restart", item_id="m1"),
                            Interaction(user_id="x", item_id="m1"),
                            Interaction(user_id="x", item_id="m2")])
    store.close()
""")

READER_CHILD = CHILD_PRELUDE + textwrap.dedent("""
    store = ChromaStore(sys.argv[1], TableEmbedder(sys.argv[2]))
    q = store.embedder.embed(["modal jazz"])
    print(json.dumps({
        "count": store.count_items(),
        "items": [i.model_dump() for i in store.get_items(["m1", "b1"])],
        "profile": store.load_profile("restart").model_dump(mode="json"),
        "sources": [s.text for s in store.get_sources("restart")],
        "cache": store.cache_get("restart", "key"),
        "popularity": store.popularity_scores(),
        "cooc": store.cooccurrence_scores(["m1"]),
        "top": store.query_items(q, 2)[0][0][0],
    }))
""")


def test_persistence_across_process_restart(tmp_path, vector_table):
    location = str(tmp_path / "restart-store")
    catalog = json.dumps([i.model_dump() for i in CATALOG])
    w = _run_child(WRITER_CHILD, location, str(vector_table), catalog)
    assert w.returncode == 0, w.stderr
    r = _run_child(READER_CHILD, location, str(vector_table))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["count"] == len(CATALOG)
    assert [Item.model_validate(d) for d in out["items"]] == [CATALOG[3], CATALOG[0]]
    profile = InterestProfile.model_validate(out["profile"])
    assert profile.version == 4 and [i.name for i in profile.interests] == ["modal jazz", "space opera"]
    assert out["sources"] == ["modal jazz forever"] and out["cache"] == {"answer": 42}
    assert out["popularity"]["m1"] == 1.0 and list(out["cooc"]) == ["m2"]
    assert out["top"] in {"m1", "m2"}


LOCK_CHILD = CHILD_PRELUDE + textwrap.dedent("""
    from interestlens.agent.errors import StoreError
    try:
        s = ChromaStore(sys.argv[1], TableEmbedder(sys.argv[2]), lock_timeout=0.5)
        print("opened", s.count_items())
        s.close()
    except StoreError as e:
        print("StoreError:", e)
""")


def test_second_process_gets_clear_error(store, vector_table):
    store.upsert_items(CATALOG[:2])
    r = _run_child(LOCK_CHILD, store.location, str(vector_table))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("StoreError:")
    assert "chroma run --path" in r.stdout and "http://" in r.stdout
    # a second store object in the same process shares the open directory
    same = ChromaStore(store.location, store.embedder)
    assert same.count_items() == 2
    same.close()
    store.close()
    r = _run_child(LOCK_CHILD, store.location, str(vector_table))
    assert r.stdout.strip() == "opened 2", r.stderr


@pytest.mark.parametrize("left", ["empty", "half-written"])
def test_an_index_file_left_broken_by_a_kill_is_rebuilt_on_open(tmp_path, embedder, left):
    """A SIGKILL while Chroma rewrites a segment's index_metadata.pickle leaves it empty or cut short, and every
    read of that collection then fails inside Chroma (for the cut-short file: "Error sending backfill request to
    compactor", the family CI once met after a kill). On open the store rebuilds those vectors from the records,
    with a fresh client where a read had already failed: nothing is lost."""
    location = tmp_path / "store"
    store = ChromaStore(str(location), embedder)
    for v in range(1, 4):
        store.save_profile(make_profile("u", v, ["jazz", "hiking"]))
    store.add_sources("u", [SourceText(id="s1", text="I love jazz and hiking.")])
    before = store.interest_embeddings("u")
    store.close()
    pickles = list(location.glob("*/index_metadata.pickle"))
    assert pickles
    for p in pickles:
        data = p.read_bytes()
        p.write_bytes(b"" if left == "empty" else data[: len(data) // 2])  # what the kill leaves
    store = ChromaStore(str(location), embedder)
    try:
        profile = store.load_profile("u")
        assert profile is not None and profile.version == 3
        assert [i.name for i in profile.interests] == ["jazz", "hiking"]
        after = store.interest_embeddings("u")
        assert set(after) == set(before) and all(np.allclose(after[k], before[k], atol=1e-5) for k in before)
        assert [s.text for s in store.get_sources("u")] == ["I love jazz and hiking."]
        store.save_profile(make_profile("u", 4, ["jazz"]))  # and it takes writes again
        assert store.load_profile("u").version == 4
    finally:
        store.close()


def test_query_is_exact_and_ties_break_by_id(store, embedder):
    """What query_items returns is the exact cosine top n of the stored vectors, equal scores (to 1e-6) ordered by
    id, so two builds of one catalog (whose HNSW graphs differ) give the same lists; a change is seen at once."""
    words = ["jazz", "space", "cooking", "hiking", "horror", "romance", "history", "chess", "surfing", "opera"]
    texts = [f"{words[k % 10]} and {words[k * 7 % 10]} {k}" for k in range(300)]
    items = [Item(id=f"i{k:03d}", title=f"Item {k}", text=t) for k, t in enumerate(texts)]
    # identical texts, so identical vectors: only the id can order them
    twin = {"title": "Twin", "metadata": {"kind": "twin"}}
    items += [Item(id=f"dup{c}", text="modal jazz records on vinyl", **twin) for c in "dcba"]
    store.upsert_items(items)
    q = embedder.embed(["jazz on vinyl", "hiking in the mountains", "a chess opera"])
    stored = store.item_embeddings([it.id for it in items])
    ids = sorted(stored)
    m = np.vstack([stored[i] for i in ids]).astype(np.float64)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    for row, got in zip(q, store.query_items(q, n=25), strict=True):
        sims = m @ (row.astype(np.float64) / np.linalg.norm(row))
        want = sorted(range(len(ids)), key=lambda k: (-round(float(sims[k]), 6), ids[k]))[:25]
        assert [i for i, _ in got] == [ids[k] for k in want]
        assert [s for _, s in got] == pytest.approx([float(sims[k]) for k in want], abs=1e-6)
    twins = [i for i, _ in store.query_items(q[0], n=10)[0] if i.startswith("dup")]
    assert twins == ["dupa", "dupb", "dupc", "dupd"]
    # the cached vectors follow the catalog: a changed text, a deletion, a filter
    store.upsert_items([Item(id="dupc", text="a cookbook of quick weeknight dinners", **twin)])
    store.delete_items(["dupa"])
    twins = [i for i, _ in store.query_items(q[0], n=10)[0] if i.startswith("dup")]
    assert twins == ["dupb", "dupd"]
    assert [i for i, _ in store.query_items(q[0], n=3, where={"kind": "twin"})[0]] == ["dupb", "dupd", "dupc"]


def test_a_save_writes_and_embeds_only_what_changed(store, embedder):
    """Unchanged interests are the same records (not embedded or written again); superseded ones are collected."""
    counting = CountingEmbedder(embedder)
    store.embedder = counting
    v1 = make_profile("carol", 1, ["jazz", "science fiction", "hiking"])
    store.save_profile(v1)
    assert len(counting.texts) == 3
    v2 = v1.model_copy(deep=True, update={"version": 2})
    v2.interests[1].weight = 9.0  # one interest changed, the text it is embedded from did not
    v2.interests.append(SubInterest(name="sourdough baking"))
    store.save_profile(v2)
    assert counting.texts[3:] == [interest_text(v2.interests[1]), interest_text(v2.interests[3])]
    assert store.load_profile("carol") == v2
    recs = store.collections()["interests"].get(where={"user_id": "carol"}, include=["metadatas"])
    by_name = {m["name"]: m["version"] for m in recs["metadatas"]}
    assert by_name == {"jazz": 1, "science fiction": 2, "hiking": 1, "sourdough baking": 2}  # v1's copy collected
    assert store._profile_commits.committed_records("carol") == [
        record_id("carol", i.model_dump_json()) for i in v2.interests
    ]
    n = len(counting.texts)
    store.save_profile(v2.model_copy(update={"version": 3}))  # nothing changed: nothing embedded
    assert len(counting.texts) == n and store.load_profile("carol").version == 3
    store.embedder = embedder


def _write_legacy_profile(store: ChromaStore, profile: InterestProfile, gen: str, embedder) -> None:
    """A profile as releases before manifests wrote it: records `uid/gen/pos` carrying gen and pos."""
    uid = profile.user_id
    cols = store.collections()
    vecs = embedder.embed([interest_text(i) for i in profile.interests])
    cols["interests"].upsert(
        ids=[f"{uid}/{gen}/{pos}" for pos in range(len(profile.interests))],
        embeddings=vecs,
        metadatas=[
            {"user_id": uid, "gen": gen, "version": profile.version, "pos": pos, "interest_id": it.id,
             "name": it.name, "polarity": it.polarity.value, "origin": it.origin.value, "muted": it.muted,
             "weight": float(it.weight)}
            for pos, it in enumerate(profile.interests)
        ],
        documents=[it.model_dump_json() for it in profile.interests],
    )
    cols["profiles"].upsert(
        ids=[uid],
        embeddings=[DUMMY],
        metadatas=[{"user_id": uid, "gen": gen, "version": profile.version, "n_interests": len(profile.interests)}],
        documents=[profile.model_dump_json(exclude={"interests"})],
    )


def test_a_profile_saved_before_manifests_is_read_and_converted_by_its_next_save(store, embedder):
    old = make_profile("dave", 4, ["modal jazz", "space opera", "trail running"], dislike="horror movies")
    _write_legacy_profile(store, old, "0" * 32, embedder)
    stale = make_profile("dave", 3, ["polka"])
    _write_legacy_profile(store, stale, "1" * 32, embedder)  # an older generation a kill left behind
    _write_legacy_profile(store, old, "0" * 32, embedder)  # ... and the committed one is the newer
    assert store.load_profile("dave") == old
    assert set(store.interest_embeddings("dave")) == {i.id for i in old.interests}
    assert [i.name for u, i, _ in store.all_interests() if u == "dave"] == [i.name for i in old.interests]
    new = old.model_copy(deep=True, update={"version": 5})
    new.interests[0].weight = 3.0
    store.save_profile(new)
    assert store.load_profile("dave") == new
    recs = store.collections()["interests"].get(where={"user_id": "dave"}, include=["metadatas"])
    assert len(recs["ids"]) == len(new.interests)  # every legacy record, committed or stale, is gone
    assert not any("gen" in m for m in recs["metadatas"])
    assert [i.name for u, i, _ in store.all_interests() if u == "dave"] == [i.name for i in new.interests]
