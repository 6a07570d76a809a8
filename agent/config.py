"""Layered settings (RecBole style): built-in defaults < environment (INTERESTLENS_*) < explicit arguments.

`Settings()` reads the environment; `Settings(llm="gguf:/m.gguf")` or `settings.model_copy(update=...)`
overrides. The CLI passes its flags as explicit arguments, so flags win over the environment.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_store_dir() -> str:
    return str(Path.home() / ".interestlens")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INTERESTLENS_", extra="ignore")

    # Backends. llm: "smollm2" (packaged default) | "gguf:/path.gguf" | "openai:MODEL" | "none".
    llm: str = "smollm2"
    openai_base_url: str | None = None  # also read from OPENAI_BASE_URL by the adapter
    openai_api_key: str | None = None  # also read from OPENAI_API_KEY by the adapter
    n_ctx: int = 2048
    n_gpu_layers: int = 0  # -1 = offload every layer when llama.cpp was built with CUDA
    n_threads: int | None = None
    llm_timeout_s: float = 60.0
    seed: int = 0
    # embedder: "minilm" (packaged all-MiniLM-L6-v2) | "openai:MODEL"
    embedder: str = "minilm"
    store: str = Field(default_factory=default_store_dir)  # directory, or http://host:port for a Chroma server
    # OpenTelemetry spans per agent call, stage and LLM call (agent/tracing.py), to the global TracerProvider.
    # Off by default: a host opts in; the CLI's --trace installs an exporter and turns it on.
    trace: bool = False

    # Catalog documents: metadata fields appended to an item's text before it is embedded (stores.chroma_store
    # with_metadata_text), the same for the agent and the evaluation baselines. Genre-like fields say what a bare
    # title does not (ReDial's item text is only the title); fields the text already spells out are skipped.
    item_text_fields: list[str] = Field(
        default_factory=lambda: ["genres", "movielens_genres", "tags", "creator", "author", "director", "artist"]
    )

    # Decomposition
    max_text_chars: int = 200_000  # longer input is refused with a clear error
    chunk_chars: int = 1200  # text longer than this is split for the LLM and results merged
    max_interests_per_chunk: int = 4  # 6 made the packaged 135M model run out of tokens and fall back
    # Interest name vs its evidence (cosine, MiniLM). Measured: real names 0.48-0.87 to their quotes, names the
    # packaged 135M model invented for a quote 0.27-0.36 ("space operas" for "I can't stand horror movies").
    grounding_min_similarity: float = 0.4
    # Profile dynamics
    half_life_days: float = 90.0
    merge_similarity: float = 0.82  # near-duplicate interests (cosine of name+description)
    reinforce_step: float = 0.5
    # Observe removes interests whose weight, decayed to the profile's newest evidence, fell under this (never muted
    # ones). 0.05 = a single mention (weight 0.6) unseen for ~11 months while the user kept talking; 0 keeps all.
    prune_below: float = 0.05
    # Composition and retrieval
    max_intents: int = 4
    per_intent_k: int = 100
    rrf_k: int = 60
    mmr_lambda: float = 0.7
    # With 2+ intents, share the k slots among them by weight (agent/retrieve.proportional_select) instead
    # of plain MMR. Off: on MovieLens dev (full, CV, commit beba724) ndcg@10 0.067 with it, 0.131 without
    # (run-to-run spread of that figure: about 0.03). It fixes what the walk-through shows, not what users liked.
    intent_slots: bool = False
    dislike_similarity: float = 0.55  # items closer than this to a dislike are filtered out
    # Fusion of the retrieval signals (agent/fusion.py). Without a fitted model, a linear blend of the
    # rank-normalised signals with these weights. Popularity at 1.0 (was 2.0, chosen on ReDial by a grid search
    # that saw the reported cases): on a catalog of one's own it must not outweigh what the user said; text,
    # named titles and collaborative signals count as much. Fit a ranker to your data with `interestlens tune`.
    fusion_weights: dict[str, float] = Field(
        default_factory=lambda: {
            "text": 1.0, "popularity": 1.0, "cooc": 0.5, "ease": 0.5, "mention": 1.0, "facet": 1.0,
        }
    )
    # A fitted fusion (`interestlens tune` writes one); None: `<store>/fusion.json` when present, else linear.
    fusion_model: str | None = None
    # LLM stages. None (the default) = auto: on for an LLM you choose (`--llm gguf:...`, `--llm openai:...`, or an
    # LLM object passed to InterestAgent), off for the packaged SmolLM2-135M floor (`smollm2`), whose decomposition,
    # composition and reranking measured below the no-LLM path on ReDial dev and cost minutes per turn on 2 cores
    # (README, evaluation and benchmarks). True/False force a stage on or off for any model.
    use_llm_decompose: bool | None = None
    use_llm_compose: bool | None = None
    rerank: bool | None = None
    # Reranking
    rerank_top_n: int = 20
    rerank_permutations: int = 1
    # Weight of the LLM's rank-normalised label score in the rerank fusion, per model id (agent/rerank.py):
    # fitted per model on dev data by cross-validation; a model missing here gets the default, 0.0 until measured
    # (at 0 the LLM does not reorder, it only writes the justifications of the final top k).
    llm_rank_weights: dict[str, float] = Field(default_factory=dict)
    llm_rank_weight_default: float = 0.0
