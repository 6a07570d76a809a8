"""Topics across users: agglomerative clustering (cosine, average linkage) of every stored active like.

Each topic is named by the LLM (topic_name.j2) when there is one and its answer is usable, else after its most
central interest. `user_share[u]` is the share of user u's total effective weight that falls in the topic.
Dislikes are left out: a topic describes what people are into.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from pydantic import BaseModel, Field

from interestlens.agent.clustering import cluster_labels, label_groups
from interestlens.agent.config import Settings
from interestlens.agent.errors import LLMError
from interestlens.agent.llm.base import Stopwatch, StructuredLLM
from interestlens.agent.llm.call import structured_call
from interestlens.agent.models import Polarity, StageStats, Topic, content_hash
from interestlens.agent.profile import effective_weight
from interestlens.agent.prompting import render
from interestlens.agent.protocols import Embedder, Store

TOPIC_DISTANCE = 0.55  # cosine distance within which interests share a topic (average linkage)
MAX_NAMED_BY_LLM = 20  # the largest topics are named by the LLM; the rest after their central interest
MAX_NAMES = 20


class _TopicName(BaseModel):
    name: str = Field(min_length=2, max_length=40)


def build_topics(
    store: Store,
    embedder: Embedder,
    *,
    llm: StructuredLLM | None = None,
    settings: Settings,
    stats: StageStats,
    distance: float = TOPIC_DISTANCE,
    now: datetime | None = None,
) -> list[Topic]:
    """Topics, largest first. `embedder` is used when the store returns no embedding for an interest."""
    sw = Stopwatch()
    now = now or datetime.now(UTC)
    rows = [(u, i, e) for u, i, e in store.all_interests() if not i.muted and i.polarity is Polarity.LIKE]
    if not rows:
        return []
    embs = np.stack([e for _, _, e in rows]).astype(np.float32)
    norms = np.linalg.norm(embs, axis=1)
    if np.any(norms == 0):  # a record stored without a vector: embed its name
        bad = np.flatnonzero(norms == 0)
        embs[bad] = embedder.embed([rows[b][1].name for b in bad])
    embs /= np.linalg.norm(embs, axis=1, keepdims=True)
    labels = cluster_labels(embs, distance)
    weights = np.array([effective_weight(i, now, settings.profile.half_life_days) for _, i, _ in rows])
    user_total: dict[str, float] = {}
    for (u, _, _), w in zip(rows, weights, strict=True):
        user_total[u] = user_total.get(u, 0.0) + float(w)

    ordered = sorted(label_groups(labels), key=lambda m: (-len(m), rows[m[0]][1].name))
    topics: list[Topic] = []
    for rank, members in enumerate(ordered):
        vecs = embs[members]
        centrality = vecs @ vecs.mean(axis=0)
        by_centrality = [members[k] for k in np.argsort(-centrality, kind="stable")]
        names = list(dict.fromkeys(rows[m][1].name for m in by_centrality))
        share: dict[str, float] = {}
        for m in members:
            u = rows[m][0]
            share[u] = share.get(u, 0.0) + float(weights[m])
        share = {
            u: round(w / user_total[u], 4) if user_total[u] > 0 else 0.0 for u, w in sorted(share.items())
        }
        name = names[0]
        if llm is not None and len(names) > 1 and rank < MAX_NAMED_BY_LLM:
            name = _llm_name(llm, names, stats) or name
        topics.append(
            Topic(
                id="topic-" + content_hash(*sorted(rows[m][1].id + "@" + rows[m][0] for m in members)),
                name=name,
                interest_names=names[:MAX_NAMES],
                size=len(members),
                user_share=share,
            )
        )
    stats.latency_ms["topics"] = stats.latency_ms.get("topics", 0.0) + sw.ms
    return topics


def _llm_name(llm: StructuredLLM, names: list[str], stats: StageStats) -> str | None:
    try:
        prompt = render("topic_name", names=names[:12])
        reply = structured_call(llm, prompt, _TopicName, stats=stats, max_tokens=40)
    except LLMError as e:
        stats.fallbacks += 1
        stats.warnings.append(f"topics: LLM topic name unusable ({str(e)[:80]})")
        return None
    name = " ".join(reply.name.split()).strip(" .,:;\"'")
    if len(name) < 2 or not any(c.isalpha() for c in name):
        stats.fallbacks += 1
        return None
    return name
