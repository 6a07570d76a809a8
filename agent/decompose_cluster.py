"""Decomposition without an LLM (`ClusterDecomposer`): the fallback whenever the LLM is absent, fails, answers
invalidly or grounds nothing.

The statement clauses (agent/clauses.py) are embedded and grouped by agglomerative clustering (cosine),
separately for likes and dislikes; each group is named by its key phrase closest to the group's centroid, and
its clauses, most central first, are its evidence. Deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np

from interestlens.agent.chunks import Segment, merge_same_name
from interestlens.agent.clauses import Clause, statement_clauses
from interestlens.agent.clustering import cluster_labels
from interestlens.agent.config import Settings
from interestlens.agent.grounding import seen_range
from interestlens.agent.llm.base import Stopwatch
from interestlens.agent.models import EvidenceSpan, Polarity, SourceText, StageStats, SubInterest, utcnow
from interestlens.agent.protocols import Embedder


class ClusterDecomposer:
    """Embedding-cluster decomposition of clauses; no LLM, deterministic."""

    extractor = "cluster"

    def __init__(
        self,
        embedder: Embedder,
        settings: Settings,
        *,
        distance_threshold: float = 0.6,
        max_clauses: int = 2000,
    ) -> None:
        self.embedder = embedder
        self.settings = settings
        self.distance_threshold = distance_threshold  # cosine distance, average linkage
        self.max_clauses = max_clauses

    def decompose(
        self, sources: Sequence[SourceText], stats: StageStats | None = None, now: datetime | None = None
    ) -> list[SubInterest]:
        sw = Stopwatch()
        segs = [Segment(s, 0, len(s.text)) for s in sources if s.text.strip()]
        total_chars = sum(len(s.text) for s in sources)
        # Bound the number of interests like the LLM path would: per chunk of input.
        # Several short texts (a week of posts) each state something: at least two interests per text fit.
        cfg = self.settings.decompose
        per_chunk = cfg.max_interests_per_chunk * max(1, -(-total_chars // cfg.chunk_chars))
        limit = min(50, max(per_chunk, 2 * len(segs)))
        out = self.decompose_segments(segs, now=now, max_interests=limit)
        if stats is not None:
            stats.latency_ms["decompose"] = stats.latency_ms.get("decompose", 0.0) + sw.ms
        return out

    def _clauses(self, segments: Sequence[Segment], exclude: Sequence[EvidenceSpan] = ()) -> list[Clause]:
        return statement_clauses(segments, exclude, self.max_clauses)

    # Two sentences of one text are two statements unless they say nearly the same thing: a person who writes
    # "I love space operas. Lately I'm also into heist thrillers." names two interests, which plain cosine
    # clustering merged (issue 9). Across texts (a profile built over weeks) the plain distance applies.
    same_text_penalty = 0.3

    def _cluster(self, vecs: np.ndarray, sources: Sequence[str]) -> np.ndarray:
        src = np.asarray([hash(x) for x in sources])
        same = src[:, None] == src[None, :]
        np.fill_diagonal(same, False)
        return cluster_labels(vecs, self.distance_threshold, penalty=self.same_text_penalty * same)

    def decompose_segments(
        self,
        segments: Sequence[Segment],
        *,
        now: datetime | None = None,
        max_interests: int | None = None,
        exclude: Sequence[EvidenceSpan] = (),
    ) -> list[SubInterest]:
        """Interests of the segments' clauses; clauses overlapping `exclude` spans are left out."""
        now = now or utcnow()
        clauses = self._clauses(segments, exclude)
        if not clauses:
            return []
        vecs = self.embedder.embed([c.text for c in clauses])
        groups: list[tuple[list[int], np.ndarray]] = []
        rank: list[int] = []  # a group's place within its polarity: ties alternate likes and dislikes
        for pol in (Polarity.LIKE, Polarity.DISLIKE):
            idx = [i for i, c in enumerate(clauses) if c.polarity is pol]
            if not idx:
                continue
            labels = self._cluster(vecs[idx], [clauses[i].source.id for i in idx])
            for lab in sorted(set(labels.tolist())):
                members = [idx[k] for k in range(len(idx)) if labels[k] == lab]
                centroid = vecs[members].mean(axis=0)
                centroid /= np.linalg.norm(centroid) or 1.0
                rank.append(sum(1 for m, _ in groups if clauses[m[0]].polarity is pol))
                groups.append((members, centroid))
        # Biggest groups first; among equals, a dislike is not crowded out by a run of likes.
        order = sorted(range(len(groups)), key=lambda k: (-len(groups[k][0]), rank[k]))
        groups = [groups[k] for k in order]
        groups = groups[: max_interests or self.settings.decompose.max_interests_per_chunk]

        # Name every group in one embedding batch: its candidate phrase closest to the centroid.
        cands: list[list[str]] = []
        counts: list[dict[str, int]] = []
        for members, _ in groups:
            c: dict[str, int] = {}
            for i in members:
                for p in clauses[i].phrases:
                    c[p] = c.get(p, 0) + 1
            counts.append(c)
            cands.append(list(c))
        flat = [p for ps in cands for p in ps]
        pvecs = self.embedder.embed(flat) if flat else np.zeros((0, 1))
        out: list[SubInterest] = []
        offset = 0
        total = len(clauses)
        for (members, centroid), ps, cnt in zip(groups, cands, counts, strict=True):
            sims = pvecs[offset : offset + len(ps)] @ centroid
            offset += len(ps)
            # Small bonus for phrases that recur across the group's clauses.
            scores = [float(s) + 0.03 * (cnt[p] - 1) for s, p in zip(sims, ps, strict=True)]
            name = ps[int(np.argmax(scores))]
            member_sims = vecs[members] @ centroid
            order = [members[k] for k in np.argsort(-member_sims)]
            central = clauses[order[0]]
            evidence = [
                EvidenceSpan(
                    source_id=clauses[i].source.id,
                    start=clauses[i].start,
                    end=clauses[i].end,
                    text=clauses[i].text,
                )
                for i in order[:10]
            ]
            first, last = seen_range([clauses[i].source for i in members], now)
            out.append(
                SubInterest(
                    name=name[:120],
                    description=central.text[:120],
                    polarity=clauses[members[0]].polarity,
                    weight=round(len(members) / total, 4),
                    confidence=min(0.5, 0.25 + 0.05 * len(members)),
                    evidence=evidence,
                    first_seen=first,
                    last_seen=last,
                    extractor=self.extractor,
                )
            )
        return merge_same_name(out)
