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
    # Composition and retrieval
    max_intents: int = 4
    per_intent_k: int = 100
    rrf_k: int = 60
    mmr_lambda: float = 0.7
    dislike_similarity: float = 0.55  # items closer than this to a dislike are filtered out
    # Fusion weights of the retrieval signals (text, popularity, cooc, mention), chosen on dev data only:
    # `tune_fusion_weights` on the first 120 ReDial dev cases, full protocol: ndcg@10 0.079 here vs 0.024 for
    # the untuned 1/0.5/1/1; the grid's best (popularity 3, mention 2: 0.0815) is within noise, and a smaller
    # popularity weight keeps a user's stated interests in charge on catalogs with rich item text.
    # Never tuned on a test split.
    fusion_weights: dict[str, float] = Field(
        default_factory=lambda: {"text": 1.0, "popularity": 2.0, "cooc": 1.0, "mention": 1.0}
    )
    # Reranking
    rerank: bool = True
    rerank_top_n: int = 20
    rerank_permutations: int = 1
    use_llm_decompose: bool = True
    use_llm_compose: bool = True
