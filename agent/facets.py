"""Facets: catalog metadata (genre, decade, creator, type) as soft boosts and hard filters for retrieval.

`FacetIndex` is built once per catalog from items' metadata: list-valued genre-like fields (`genres`,
`movielens_genres`, `tags`), `year` -> decade, `creator`/`author`/`director`, and `type`/`kind`/`category`/`domain`.
`request_facets` maps a profile and a request to a `FacetQuery`: soft weights from liked interests and the request,
exclusions from dislikes and hard negatives ("no horror"), requirements from hard positives ("from the 90s", "a film
for tonight" when the catalog has a type facet). Words map to facet values by a small lexicon plus embedding similarity
of the interest name to the facet value's label ("science fiction epics" -> Sci-Fi, "heist thrillers" -> Thriller).

Facet keys are "family:value", lower case: "genre:horror", "decade:1990s", "creator:ridley scott", "type:movie".
`RequestFacets` is one request's query bound to the catalog's index, as retrieval uses it: facet-matching
candidates, soft scores and the hard filter.
"""

from __future__ import annotations

import hashlib
import heapq
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from interestlens.agent.models import InterestProfile, Item, Polarity
from interestlens.agent.protocols import Embedder, Store

GENRE_FIELDS = ("genres", "movielens_genres", "genre")
TAG_FIELDS = ("tags",)
CREATOR_FIELDS = ("creator", "author", "director", "artist")
TYPE_FIELDS = ("type", "kind", "category", "domain")

# One spelling per genre, so "Sci-Fi" (MovieLens) and "science fiction" (demo) are one facet value.
_CANON = {
    "sci-fi": "science fiction", "scifi": "science fiction", "sf": "science fiction", "children": "family",
    "children's": "family", "kids": "family", "rom-com": "romance", "film-noir": "film noir", "noir": "film noir",
    "musicals": "musical", "documentaries": "documentary", "comedies": "comedy", "thrillers": "thriller",
}
# Words a person writes -> canonical genre values (only those the catalog has are used).
_LEXICON: dict[str, tuple[str, ...]] = {
    "sci-fi": ("science fiction",), "scifi": ("science fiction",), "science fiction": ("science fiction",),
    "space opera": ("science fiction",), "space": ("science fiction",), "starships": ("science fiction",),
    "alien": ("science fiction",), "aliens": ("science fiction",), "cyberpunk": ("science fiction",),
    "heist": ("crime", "thriller"), "heists": ("crime", "thriller"), "gangster": ("crime",), "mafia": ("crime",),
    "detective": ("mystery", "crime"), "whodunit": ("mystery",), "noir": ("film noir", "crime"),
    "horror": ("horror",), "scary": ("horror",), "gore": ("horror",), "gory": ("horror",), "slasher": ("horror",),
    "jump scares": ("horror",), "zombie": ("horror",), "zombies": ("horror",), "creepy": ("horror",),
    "funny": ("comedy",), "comedy": ("comedy",), "comedies": ("comedy",), "hilarious": ("comedy",),
    "rom-com": ("romance", "comedy"), "romcom": ("romance", "comedy"), "romantic": ("romance",),
    "love stories": ("romance",), "animated": ("animation",), "cartoon": ("animation",), "cartoons": ("animation",),
    "anime": ("animation",), "ghibli": ("animation",), "pixar": ("animation",), "documentary": ("documentary",),
    "documentaries": ("documentary",), "war": ("war",), "western": ("western",), "westerns": ("western",),
    "musical": ("musical",), "musicals": ("musical",), "superhero": ("action", "adventure"),
    "superheroes": ("action", "adventure"), "marvel": ("action", "adventure"), "martial arts": ("action",),
    "action": ("action",), "thriller": ("thriller",), "thrillers": ("thriller",), "suspense": ("thriller",),
    "fantasy": ("fantasy",), "magic": ("fantasy",), "dragons": ("fantasy",), "mystery": ("mystery",),
    "mysteries": ("mystery",), "drama": ("drama",), "dramas": ("drama",), "family": ("family",),
    "jazz": ("jazz",), "hiking": ("outdoors", "adventure"), "hike": ("outdoors", "adventure"),
    "cooking": ("cooking", "food"), "true crime": ("true crime", "crime"),
}
_TYPE_WORDS: dict[str, tuple[str, ...]] = {
    "film": ("movie", "film"), "films": ("movie", "film"), "movie": ("movie", "film"), "movies": ("movie", "film"),
    "book": ("book",), "books": ("book",), "novel": ("book",), "novels": ("book",), "read": ("book",),
    "album": ("music", "album"), "albums": ("music", "album"), "records": ("music",),
    "music": ("music",), "song": ("music",), "songs": ("music",), "listen": ("music", "podcast"),
    "game": ("game",), "games": ("game",), "podcast": ("podcast",), "podcasts": ("podcast",),
    "series": ("tv", "series"),
}
_WORD = re.compile(r"[a-z0-9][a-z0-9'\-]*")
_DECADE = re.compile(
    r"\b(?:(?:from|in|of)\s{1,3}the\s{1,3})?(?:(?P<c>19|20)?(?P<d>[0-9])0'?s)\b"
    r"|\bfrom\s{1,3}(?P<y>(?:19|20)[0-9]{2})\b"
)
# Hard negatives in a request: "no horror", "nothing scary", "not horror", "without gore", "anything but horror".
_NEGATION = re.compile(
    r"\b(?:no|not|nothing|without|never|avoid|except|skip|hate|dislike|anything\s{1,3}but|can'?t\s{1,3}stand|"
    r"don'?t\s{1,3}(?:want|like|show|recommend))\s{1,3}(?P<w>(?:[a-z\-']{2,20}\s{0,3}){1,3})",
)
_SOFT_MIN_SIM = 0.5  # MiniLM cosine: interest name vs facet label, enough to call it that genre
_EXCLUDE_MIN_SIM = 0.62  # stricter for dropping items: a wrong exclusion hides good items


def _canon(value: str) -> str:
    v = " ".join(str(value).strip().lower().split())
    return _CANON.get(v, v)


def _decade(year: Any) -> str | None:
    try:
        y = int(year)
    except (TypeError, ValueError):
        return None
    return f"{y // 10 * 10}s" if 1000 <= y <= 2999 else None


def item_facets(item: Item) -> set[str]:
    """Facet keys of one item from its metadata."""
    md = item.metadata or {}
    out: set[str] = set()

    def values(field: str) -> list[str]:
        v = md.get(field)
        if isinstance(v, str):
            return [v]
        if isinstance(v, list | tuple):
            return [str(x) for x in v if isinstance(x, str | int | float) and str(x).strip()]
        return []

    for f in GENRE_FIELDS:
        out.update(f"genre:{_canon(v)}" for v in values(f) if _canon(v) != "(no genres listed)")
    for f in TAG_FIELDS:
        out.update(f"tag:{_canon(v)}" for v in values(f)[:50])
    for f in CREATOR_FIELDS:
        out.update(f"creator:{_canon(v)}" for v in values(f))
    for f in TYPE_FIELDS:
        out.update(f"type:{_canon(v)}" for v in values(f))
    dec = _decade(md.get("year"))
    if dec:
        out.add(f"decade:{dec}")
    return out


class FacetQuery(BaseModel):
    """What a request asks of the catalog's facets."""

    soft: dict[str, float] = Field(default_factory=dict)  # facet key -> weight in (0, 1]
    exclude: set[str] = Field(default_factory=set)  # an item with any of these fails
    require: set[str] = Field(default_factory=set)  # per family: an item needs at least one of these


class FacetIndex:
    """Facets of every item of one catalog, with the facet labels' embeddings computed once."""

    def __init__(self, items: Iterable[Item]) -> None:
        self.item_facets: dict[str, frozenset[str]] = {}
        self.by_facet: dict[str, set[str]] = {}
        for item in items:
            fs = frozenset(item_facets(item))
            self.item_facets[item.id] = fs
            for f in fs:
                self.by_facet.setdefault(f, set()).add(item.id)
        # Genres (and frequent tags) are what interest names map to by similarity.
        self.genres = sorted(f for f in self.by_facet if f.startswith("genre:"))
        self.types = sorted(f for f in self.by_facet if f.startswith("type:"))
        self._vec_lock = threading.Lock()
        self._label_vecs: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.item_facets)

    def has(self, key: str) -> bool:
        return key in self.by_facet

    def label_vectors(self, embedder: Embedder) -> np.ndarray:
        model = getattr(embedder, "model_id", type(embedder).__name__)
        with self._vec_lock:
            if model not in self._label_vecs:
                labels = [g.split(":", 1)[1] for g in self.genres]
                self._label_vecs[model] = embedder.embed(labels) if labels else np.zeros((0, 1), np.float32)
            return self._label_vecs[model]


_CACHE: dict[tuple[Any, ...], FacetIndex] = {}
_CACHE_LOCK = threading.Lock()


def facet_index_for(store: Store, version: object | None = None) -> FacetIndex:
    """The store's FacetIndex, rebuilt only when its catalog changed.

    `version`: a value the caller changes whenever the catalog changes (the agent's own catalog counter, bumped
    where it drops its title linker); then no id listing is needed per request. Without it the key is the item
    count and a digest of the ids (one id listing per call: fine for small catalogs, a few ms at 10k items).
    """
    if version is not None:
        key: tuple[Any, ...] = (id(store), "v", version)
    else:
        ids = sorted(store.item_ids())
        digest = hashlib.sha256("\x1f".join(ids).encode("utf-8", "surrogatepass")).hexdigest()[:16]
        key = (id(store), len(ids), digest)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
    if hit is not None:
        return hit
    index = FacetIndex(store.iter_items())
    with _CACHE_LOCK:
        for k in [k for k in _CACHE if k[0] == id(store)]:
            del _CACHE[k]
        _CACHE[key] = index
    return index


def _lexicon_hits(text: str, index: FacetIndex) -> set[str]:
    words = _WORD.findall(text.lower())
    grams = set(words) | {" ".join(words[i : i + 2]) for i in range(len(words) - 1)}
    out = set()
    for g in grams:
        for v in _LEXICON.get(g, ()):
            if index.has(f"genre:{v}"):
                out.add(f"genre:{v}")
    return out


def _similar_genres(
    vecs: np.ndarray, index: FacetIndex, embedder: Embedder, min_sim: float, top: int
) -> list[dict[str, float]]:
    labels = index.label_vectors(embedder)
    if not len(index.genres) or not len(vecs):
        return [{} for _ in range(len(vecs))]
    sims = vecs @ labels.T
    out = []
    for row in sims:
        order = np.argsort(-row)[:top]
        best = float(row[order[0]]) if len(order) else 0.0
        # A runner-up only when nearly as close ("heist thrillers": Crime and Thriller), not a loose association.
        out.append({index.genres[j]: float(row[j]) for j in order if row[j] >= max(min_sim, best - 0.08)})
    return out


def _request_conditions(context: str, index: FacetIndex) -> tuple[set[str], set[str], set[str]]:
    """(require, exclude, soft genre keys) stated in the request text."""
    text = context.lower()[:2000]  # a request is short; bound the work on hostile input
    require: set[str] = set()
    exclude: set[str] = set()
    for m in _DECADE.finditer(text):
        if m.group("y"):
            dec = _decade(m.group("y"))
        else:
            century = m.group("c") or ("20" if m.group("d") in "012" else "19")
            dec = f"{century}{m.group('d')}0s"
        if dec and index.has(f"decade:{dec}"):
            require.add(f"decade:{dec}")
    negated_words: set[str] = set()
    for m in _NEGATION.finditer(text):
        phrase = m.group("w")
        negated_words.update(_WORD.findall(phrase))
        exclude |= _lexicon_hits(phrase, index)
        exclude |= {f"genre:{_canon(w)}" for w in _WORD.findall(phrase) if index.has(f"genre:{_canon(w)}")}
    if index.types:
        for w in _WORD.findall(text):
            if w in negated_words:
                continue
            for t in _TYPE_WORDS.get(w, ()):
                if index.has(f"type:{t}"):
                    require.add(f"type:{t}")
    positive = " ".join(w for w in _WORD.findall(text) if w not in negated_words)
    soft = _lexicon_hits(positive, index) | {
        f"genre:{_canon(w)}" for w in _WORD.findall(positive) if index.has(f"genre:{_canon(w)}")
    }
    return require, exclude, soft - exclude


def request_facets(
    profile: InterestProfile | None, context: str | None, index: FacetIndex, embedder: Embedder
) -> FacetQuery:
    """Soft facet weights from liked interests and the request; exclusions from dislikes and "no X"; requirements
    from hard positives ("from the 90s", "a film for tonight")."""
    interests = [i for i in (profile.interests if profile else []) if not i.muted]
    likes = [i for i in interests if i.polarity is Polarity.LIKE]
    dislikes = [i for i in interests if i.polarity is Polarity.DISLIKE]
    names = [i.name for i in likes + dislikes]
    # one (empty) row per name when there is nothing to compare with, so the zips below line up
    vecs = embedder.embed(names) if names and index.genres else np.zeros((len(names), 1), np.float32)
    soft_sims = _similar_genres(vecs[: len(likes)], index, embedder, _SOFT_MIN_SIM, 2)
    excl_sims = _similar_genres(vecs[len(likes) :], index, embedder, _EXCLUDE_MIN_SIM, 1)

    soft: dict[str, float] = {}
    total = sum(max(i.weight, 1e-3) for i in likes) or 1.0
    for it, sims in zip(likes, soft_sims, strict=True):
        share = max(it.weight, 1e-3) / total
        hits = dict.fromkeys(_lexicon_hits(it.name, index), 1.0) | sims
        for key, s in hits.items():
            soft[key] = soft.get(key, 0.0) + share * s
    exclude: set[str] = set()
    for it, sims in zip(dislikes, excl_sims, strict=True):
        exclude |= _lexicon_hits(it.name, index) | set(sims)
    require: set[str] = set()
    if context:
        req, excl, ctx_soft = _request_conditions(context, index)
        require |= req
        exclude |= excl
        top = max(soft.values(), default=1.0)
        for key in ctx_soft:  # the request outweighs the profile: it is what the user wants now
            soft[key] = soft.get(key, 0.0) + top
    for key in exclude:
        soft.pop(key, None)
    top = max(soft.values(), default=0.0)
    soft = {k: round(v / top, 4) for k, v in soft.items() if top > 0 and v / top >= 0.05}
    return FacetQuery(soft=soft, exclude=exclude, require=require)


def facet_scores(query: FacetQuery, item_ids: Sequence[str], index: FacetIndex) -> dict[str, float]:
    """Per item, the share of the query's soft weight its facets carry, in [0, 1]."""
    total = sum(query.soft.values())
    acc = dict.fromkeys(item_ids, 0.0)
    if not total:
        return acc
    # Walk each soft facet's items (not every item's facets): the same sums, in the same order, a few times faster.
    for key, w in query.soft.items():
        for item_id in index.by_facet.get(key, ()):
            if item_id in acc:
                acc[item_id] += w
    return {item_id: round(v / total, 4) for item_id, v in acc.items()}


def passes_hard(query: FacetQuery, item_id: str, index: FacetIndex) -> bool:
    """False when the item has an excluded facet, or misses every required value of a required family."""
    fs = index.item_facets.get(item_id, frozenset())
    if fs & query.exclude:
        return False
    families: dict[str, set[str]] = {}
    for key in query.require:
        families.setdefault(key.split(":", 1)[0], set()).add(key)
    return all(fs & keys for keys in families.values())


class RequestFacets:
    """A request's facet query over one catalog's facet index: candidates, soft scores and the hard filter."""

    def __init__(self, query: FacetQuery, index: FacetIndex) -> None:
        self.query = query
        self.index = index

    def __bool__(self) -> bool:
        return bool(self.query.soft or self.query.exclude or self.query.require)

    def candidates(self, n: int, popularity: Mapping[str, float]) -> list[str]:
        """Items carrying the request's soft facets, best share first, then the most popular."""
        ids = {i for key in self.query.soft for i in self.index.by_facet.get(key, ())}
        if not ids:
            return []
        share = facet_scores(self.query, list(ids), self.index)
        ranked = heapq.nlargest(4 * n, ids, key=lambda i: (share[i], popularity.get(i, 0.0), i))
        return [i for i in ranked if passes_hard(self.query, i, self.index)][:n]

    def scores(self, ids: Sequence[str]) -> dict[str, float]:
        return facet_scores(self.query, ids, self.index) if self.query.soft else {}

    def passes_hard(self, item_id: str) -> bool:
        return passes_hard(self.query, item_id, self.index)
