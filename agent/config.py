"""Settings, one nested model per component and stage (mem0's nesting, RecBole's one commented place).

Precedence: built-in defaults < environment < explicit arguments. The top level names the backends (`llm`,
`embedder`, `store`); each group holds one component's or one stage's knobs. Environment names are
`INTERESTLENS_<FIELD>` at the top level and `INTERESTLENS_<GROUP>__<FIELD>` inside a group
(`INTERESTLENS_RETRIEVE__MMR_LAMBDA=0.5`).

The flat names of earlier releases still work, as arguments, in `model_copy(update=...)`, as attributes and as
environment names (`Settings(chunk_chars=800)` sets `decompose.chunk_chars`, `INTERESTLENS_N_GPU_LAYERS=-1` sets
`llamacpp.n_gpu_layers`): they are routed to their group by `FLAT_NAMES` and the group's field names, so a script
or a test written against the flat names keeps meaning what it meant. Every resolved setting is written into
each evaluation's results.json (`Settings.model_dump()`), so a figure carries the knobs that produced it.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_serializer, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

ENV_PREFIX = "INTERESTLENS_"


def default_store_dir() -> str:
    return str(Path.home() / ".interestlens")


class _Group(BaseModel):
    # A typo in a knob name is an error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LLMStages(_Group):
    # Which stages ask the LLM. None = auto: on for an LLM you choose (`--llm gguf:...`, `--llm openai:...`, or an LLM
    # object passed to InterestAgent), off for the packaged SmolLM2-135M floor (`smollm2`), whose decomposition,
    # composition and reranking measured below the no-LLM path on ReDial dev and cost minutes per turn on 2 cores
    # (README, evaluation and benchmarks). True/False force a stage on or off for any model.
    decompose: bool | None = None
    compose: bool | None = None
    rerank: bool | None = None


class LlamaCppConfig(_Group):
    n_ctx: int = 2048  # every template is sized to fit 2k, the packaged model's training context
    n_gpu_layers: int = 0  # -1 = offload every layer when llama.cpp was built with CUDA
    n_threads: int | None = None  # None: per call, every core when other processes leave them idle, else half
    # KV states of each stage's system prompt kept in RAM (llamacpp_prefix.py); SmolLM2 needs ~23 KB per token,
    # ~5 MB for the decompose prompt's. 0 turns it off.
    prompt_cache_mb: int = 64
    # Greedy grammar-constrained decoding tests the model's top token before the whole vocabulary
    # (llamacpp_sampling.py): the same tokens, ~35 % less time per justification call here (README, Benchmarks).
    # False: llama-cpp-python's own sampler chain.
    grammar_first: bool = True


class OpenAIConfig(_Group):
    # One endpoint for the LLM and the embedder when either is "openai:..."; unset falls back to OPENAI_BASE_URL /
    # OPENAI_API_KEY, read by the adapter.
    base_url: str | None = None
    api_key: str | None = None
    timeout_s: float = 60.0  # per request

    @field_serializer("api_key", when_used="json")
    def _mask_key(self, key: str | None) -> str | None:
        # Resolved settings are written into results.json and bench files: the key must not be.
        return None if key is None else "***"


class CatalogConfig(_Group):
    # Metadata fields appended to an item's text before it is embedded (stores.items with_metadata_text), the
    # same for the agent and the evaluation baselines. Genre-like fields say what a bare title does not (ReDial's item
    # text is only the title); fields the text already spells out are skipped.
    item_text_fields: list[str] = Field(
        default_factory=lambda: ["genres", "movielens_genres", "tags", "creator", "author", "director", "artist"]
    )


class DecomposeConfig(_Group):
    max_text_chars: int = 200_000  # longer input is refused with a clear error
    chunk_chars: int = 1200  # text longer than this is split for the LLM and the results merged
    max_interests_per_chunk: int = 4  # 6 made the packaged 135M model run out of tokens and fall back
    # Interest name vs its evidence (cosine, MiniLM). Measured: real names 0.48-0.87 to their quotes, names the
    # packaged 135M model invented for a quote 0.27-0.36 ("space operas" for "I can't stand horror movies").
    grounding_min_similarity: float = 0.4


class ProfileConfig(_Group):
    half_life_days: float = 90.0  # decay: an interest unseen for this long counts half (a season of taste)
    merge_similarity: float = 0.82  # cosine of name + description over which two interests are one (near-duplicates)
    reinforce_step: float = 0.5  # share of a repeated interest's weight added to the stored one
    # Observe removes interests whose weight, decayed to the profile's newest evidence, fell under this (never muted
    # ones). 0.05 = a single mention (weight 0.6) unseen for ~11 months while the user kept talking; 0 keeps all.
    prune_below: float = 0.05


class ComposeConfig(_Group):
    max_intents: int = 4
    cluster_distance: float = 0.6  # cosine distance under which interests share an intent (average linkage)
    context_boost: float = 2.0  # relevance multiplier at cosine 1.0 between an interest and the message


MMR_LAMBDA_DEFAULT = 0.7  # a prior, not fit: served where no fusion file carries a fitted lambda


class RetrieveConfig(_Group):
    per_intent_k: int = 100  # vector neighbours per intent query
    rrf_k: int = 60  # reciprocal-rank-fusion constant (the usual 60, Cormack et al. 2009)
    # Relevance vs diversity in the final selection (MMR; 1.0 = the fused order). None: the lambda `interestlens
    # tune` fit with the catalog's fusion (cross-validated over users in evaluation), else MMR_LAMBDA_DEFAULT.
    mmr_lambda: float | None = Field(default=None, ge=0.0, le=1.0)
    # With 2+ intents, share the k slots among them by weight (agent/selection.proportional_select) instead
    # of plain MMR. Off: on MovieLens dev (full, CV, commit beba724) ndcg@10 0.067 with it, 0.131 without
    # (run-to-run spread of that figure: about 0.03). It fixes what the walk-through shows, not what users liked.
    intent_slots: bool = False
    # Every like intent gets at least one slot (agent/selection.intent_floor): the last slot goes to the best
    # own match of an intent nothing in the top k speaks for ("lately I'm also into heist thrillers").
    intent_floor: bool = True
    # At most this many items of one series (titles equal up to a subtitle, a sequel number or the year:
    # agent/selection.series_key) in the top k; the others move below items of other series. 0 turns it off.
    series_cap: int = 2
    dislike_similarity: float = 0.55  # items closer than this to a dislike are filtered out
    # Cosine to an intent's query for an item to be credited to that intent (its justification names it): in a small
    # catalog every item is in every intent's list. 0.3: MiniLM's floor for "about the same topic" in the tests.
    min_intent_similarity: float = 0.3
    # Popular items added to every candidate pool: 300, because on ReDial dev half of the positives were outside a
    # pool with 100 (pool recall 0.47), and the fused ranker can only promote what is in the pool.
    popular_pool_n: int = 300
    facet_pool_n: int = 100  # items matching the request's facets (most popular first) added to the pool


class FusionConfig(_Group):
    # Without a fitted model, a linear blend of the rank-normalised signals with these weights. Popularity at 1.0
    # (was 2.0, chosen on ReDial by a grid search that saw the reported cases): on a catalog of one's own it must
    # not outweigh what the user said. Fit a ranker to your data with `interestlens tune`.
    weights: dict[str, float] = Field(
        default_factory=lambda: {
            "text": 1.0, "popularity": 1.0, "cooc": 0.5, "ease": 0.5, "mention": 1.0, "facet": 1.0,
        }
    )
    model: str | None = None  # a fitted fusion; None: `<store>/fusion.json` when present, else linear


class RerankerConfig(_Group):
    top_n: int = 20  # candidates the LLM scores (labels (A)..(T) in one forward pass)
    permutations: int = 1  # seeded candidate orders averaged against position bias
    # Weight of the LLM's rank-normalised label score in the rerank fusion, per model id: fitted per model on dev
    # data by cross-validation; a model missing here gets the default, 0.0 until measured (at 0 the LLM does not
    # reorder, it only writes the justifications of the final top k). Fit: `python -m interestlens.evals.llm_weight`;
    # the packaged SmolLM2-135M: ReDial dev +0.0022 at 0.25 (p 0.06), MovieLens dev 0 or below
    # (evals/results/llm-weight-*); a weight is deployed only where it holds on every dev set: no entry.
    llm_rank_weights: dict[str, float] = Field(default_factory=dict)
    llm_rank_weight_default: float = 0.0


# Names of earlier releases (flat Settings) -> (group, field). Same-named fields are found by `_group_of`.
FLAT_NAMES: dict[str, tuple[str, str]] = {
    "openai_base_url": ("openai", "base_url"),
    "openai_api_key": ("openai", "api_key"),
    "llm_timeout_s": ("openai", "timeout_s"),
    "use_llm_decompose": ("llm_stages", "decompose"),
    "use_llm_compose": ("llm_stages", "compose"),
    "rerank": ("llm_stages", "rerank"),
    "rerank_top_n": ("reranker", "top_n"),
    "rerank_permutations": ("reranker", "permutations"),
    "fusion_weights": ("fusion", "weights"),
    "fusion_model": ("fusion", "model"),
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="ignore")

    # Backends. llm: "smollm2" (the packaged floor) | "gguf:/path.gguf" | "openai:MODEL" | "none".
    llm: str = "smollm2"
    embedder: str = "minilm"  # "minilm" (packaged all-MiniLM-L6-v2) | "openai:MODEL"
    store: str = Field(default_factory=default_store_dir)  # a directory (embedded Chroma), or http://host:port
    seed: int = 0  # every seeded choice: sampled negatives, candidate orders, fusion folds
    # OpenTelemetry spans per agent call, stage and LLM call (agent/tracing.py), to the global TracerProvider.
    # Off by default: a host opts in; the CLI's --trace installs an exporter and turns it on.
    trace: bool = False
    llm_stages: LLMStages = Field(default_factory=LLMStages)
    llamacpp: LlamaCppConfig = Field(default_factory=LlamaCppConfig)
    openai: OpenAIConfig = Field(default_factory=OpenAIConfig)
    catalog: CatalogConfig = Field(default_factory=CatalogConfig)
    decompose: DecomposeConfig = Field(default_factory=DecomposeConfig)
    profile: ProfileConfig = Field(default_factory=ProfileConfig)
    compose: ComposeConfig = Field(default_factory=ComposeConfig)
    retrieve: RetrieveConfig = Field(default_factory=RetrieveConfig)
    fusion: FusionConfig = Field(default_factory=FusionConfig)
    reranker: RerankerConfig = Field(default_factory=RerankerConfig)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, FlatEnvSource(settings_cls), dotenv_settings, file_secret_settings

    @model_validator(mode="before")
    @classmethod
    def _route_flat_names(cls, data: Any) -> Any:
        return route_flat_names(data) if isinstance(data, dict) else data

    def __getattr__(self, name: str) -> Any:
        """A flat name of earlier releases reads its group's field (`settings.chunk_chars`)."""
        route = FLAT_NAMES.get(name) or ((g, name) if (g := _group_of(name)) else None)
        if route is None:
            return super().__getattr__(name)  # type: ignore[misc]
        return getattr(getattr(self, route[0]), route[1])

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False) -> Settings:
        """A validated copy; `update` takes group dicts or flat names of earlier releases."""
        if not update:
            return super().model_copy(deep=deep)
        # Every field is given explicitly, so the environment (read again by validation) cannot override the copy.
        return type(self).model_validate(_merge_groups(self.model_dump(), route_flat_names(dict(update))))


class FlatEnvSource(PydanticBaseSettingsSource):
    """`INTERESTLENS_<FLAT_NAME>` (`INTERESTLENS_HALF_LIFE_DAYS=30`): the environment names of the flat settings,
    read below the nested `INTERESTLENS_<GROUP>__<FIELD>` ones and routed into their groups like arguments."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # unused: __call__ reads all
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in flat_names():
            raw = os.environ.get(ENV_PREFIX + name.upper())
            if raw is None:
                continue
            try:  # lists and dicts are JSON, as for every pydantic-settings field
                out[name] = json.loads(raw) if raw.lstrip()[:1] in ("[", "{") else raw
            except json.JSONDecodeError:
                out[name] = raw
        return route_flat_names(out)


@cache
def _field_groups() -> dict[str, str]:
    """Each group field's name -> its group (names are unique across groups, and never a top-level name)."""
    out: dict[str, str] = {}
    for group, f in Settings.model_fields.items():
        fields = getattr(f.annotation, "model_fields", None) if isinstance(f.annotation, type) else None
        out |= {n: group for n in fields or {} if n not in Settings.model_fields}
    return out


def flat_names() -> list[str]:
    """Every name `route_flat_names` moves into a group."""
    return sorted(set(FLAT_NAMES) | set(_field_groups()))


def _group_of(name: str) -> str | None:
    return _field_groups().get(name)


def route_flat_names(data: dict[str, Any]) -> dict[str, Any]:
    """Flat names into their groups; unknown names are left for pydantic to ignore (env extras)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in FLAT_NAMES:
            group, field = FLAT_NAMES[key]
        elif key in Settings.model_fields:
            out = _merge_groups(out, {key: value})
            continue
        elif (g := _group_of(key)) is not None:
            group, field = g, key
        else:
            out[key] = value
            continue
        current = out.get(group, {})
        if isinstance(current, BaseModel):
            current = current.model_dump()
        out[group] = {**current, field: value}
    return out


def _merge_groups(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """`update` over `base`, two levels deep: a group's fields are merged, a field's value (a dict too) replaced."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, BaseModel):
            value = value.model_dump()
        current = out.get(key)
        if isinstance(current, BaseModel):
            current = current.model_dump()
        out[key] = {**current, **value} if isinstance(current, dict) and isinstance(value, dict) else value
    return out
