"""The LLM path's figures (issue 10): observe of 3 chat messages with LLM decomposition by labelling; recommend
k=5 with LLM compose + scoring rerank of 20 + justifications; the scoring forward pass against the model's raw
prompt-evaluation speed on the same prompt, and the KV prefix reuse gain; tokens per stage.

Runs on the packaged demo catalog (300 items) in a temporary store, with the packaged SmolLM2 by default.
The rerank weight is set to 1.0 for the measured model so the scoring pass runs (its default weight is 0); the
"deployed" rows run the same chats at the model's configured weight, which is what a user gets.

    python -m bench.llm_path --users 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import DEFAULT_OUT, BenchResult, percentile, print_table, write_result
from bench.fixtures import bench_settings

CHATS = [
    ["Hi there!", "I love slow-burn science fiction that makes space feel huge, like Interstellar.",
     "Please no horror, I can't stand jump scares."],
    ["Hello.", "My favourite evenings are spent with a clever whodunit or a heist movie.",
     "Romantic comedies bore me to tears."],
    ["Hey!", "We watch animated films with the kids every weekend and love nature documentaries.",
     "I'm not into gritty war films."],
    ["Good evening.", "Mellow late-night jazz records are my thing, especially piano trios.",
     "Loud heavy metal gives me a headache."],
]
CONTEXT = "something for tonight"


def _scoring_pass_figures(llm: Any, agent: Any, uid: str) -> dict[str, float]:
    """One scoring pass cold (KV cache reset), the same prompt with a shuffled candidate order (prefix reused),
    and the raw prompt-evaluation speed of the model on the same tokens (llama.cpp eval, nothing else)."""
    from interestlens.agent.compose import compose_intents
    from interestlens.agent.label_scoring import LABELS, candidates_prompt, evidence_catalog
    from interestlens.agent.retrieve import retrieve

    stats_cls = type(agent.recommend(uid, k=1, rerank=False).stats)
    profile = agent.store.load_profile(uid)
    stats = stats_cls()
    intents = compose_intents(profile, CONTEXT, llm=None, embedder=agent.embedder, settings=agent.settings,
                              stats=stats)
    cands = retrieve(intents, profile, agent.store, agent.embedder, agent.settings, k=20, stats=stats)[:20]
    evidence = evidence_catalog(intents, profile)
    prompt = candidates_prompt("rerank_score", cands, intents, profile, evidence, CONTEXT)
    labels = list(LABELS[: len(cands)])
    llm._llama.reset()
    cold = llm.score_labels(prompt, labels)
    cold_threads = llm._threads  # the per-call thread count (threads_for_now): 1 or 2 cores here halves the time
    again = llm.score_labels(prompt, labels)  # the very same prompt right after: only the last token is evaluated
    shuffled = [cands[i] for i in np.random.default_rng(0).permutation(len(cands))]
    warm = llm.score_labels(candidates_prompt("rerank_score", shuffled, intents, profile, evidence, CONTEXT), labels)
    # Raw prompt evaluation: the same tokens through llama.cpp's eval, from an empty KV cache.
    messages, _ = llm._fit_messages(prompt, 1)
    tokens = llm._llama.tokenize(llm._chat_text(messages).encode("utf-8"), add_bos=False, special=True)
    raw_ms = []
    raw_threads = []
    for _ in range(3):
        llm._llama.reset()
        llm._use_free_cores()  # the same per-call choice a scoring pass makes, so the two compare
        raw_threads.append(llm._threads)
        t = time.perf_counter()
        llm._llama.eval(tokens)
        raw_ms.append((time.perf_counter() - t) * 1000.0)
    llm._llama.reset()
    return {
        "prompt_tokens": float(cold.usage.prompt_tokens),
        "cold_ms": cold.usage.latency_ms,
        "shuffled_ms": warm.usage.latency_ms,
        "shuffled_cached_tokens": float(warm.usage.cached_prompt_tokens),
        "same_prompt_ms": again.usage.latency_ms,
        "raw_eval_ms": statistics.median(raw_ms),
        "cold_threads": float(cold_threads),
        "raw_threads": float(statistics.median(raw_threads)),
    }


def _observe_recommend(agent: Any, prefix: str, users: int) -> list[dict[str, float]]:
    """Each chat observed and a recommendation asked for, as fresh users of `agent` (closed after)."""
    out: list[dict[str, float]] = []
    with agent:
        for i in range(users):
            uid = f"{prefix}-{i}"
            t = time.perf_counter()
            obs = agent.observe(uid, CHATS[i % len(CHATS)])
            obs_s = time.perf_counter() - t
            t = time.perf_counter()
            rec = agent.recommend(uid, context=CONTEXT, k=5)
            out.append({"observe_s": obs_s, "recommend_s": time.perf_counter() - t,
                        "llm_calls": float(obs.stats.llm_calls + rec.stats.llm_calls),
                        "prompt_tokens": float(obs.stats.prompt_tokens + rec.stats.prompt_tokens),
                        "completion_tokens": float(obs.stats.completion_tokens + rec.stats.completion_tokens)})
            agent.forget(uid)
    return out


def _calls_note(rows: list[dict[str, float]]) -> str:
    return (f"LLM calls {statistics.fmean(r['llm_calls'] for r in rows):.1f}, tokens "
            f"{statistics.fmean(r['prompt_tokens'] for r in rows):.0f} / "
            f"{statistics.fmean(r['completion_tokens'] for r in rows):.0f}")


def run(users: int = 3, llm_spec: str = "smollm2", workdir: Path | None = None) -> BenchResult:
    from interestlens.agent.embeddings import make_embedder
    from interestlens.agent.llm import make_llm
    from interestlens.agent.service import InterestAgent
    from interestlens.stores.catalog_io import read_catalog_jsonl

    embedder = make_embedder("minilm")
    tmp = tempfile.TemporaryDirectory(prefix="il-llm-bench-") if workdir is None else None
    store = Path(tmp.name if tmp else workdir) / "store"  # type: ignore[arg-type]
    probe = bench_settings(str(store), llm=llm_spec)
    t = time.perf_counter()
    llm = make_llm(llm_spec, probe)
    load_s = time.perf_counter() - t
    settings = bench_settings(str(store), llm=llm_spec, rerank=True, rerank_top_n=20,
                              llm_rank_weights={llm.model_id: 1.0})
    deploy = bench_settings(str(store), llm=llm_spec, rerank=True, rerank_top_n=20)
    nollm = settings.model_copy(update={"llm_stages": {"decompose": False, "compose": False, "rerank": False}})
    path = resources.files("interestlens.agent").joinpath("data/demo_catalog.jsonl")
    rows: list[dict[str, Any]] = []
    with resources.as_file(path) as p:
        items = read_catalog_jsonl(p)
    with InterestAgent(settings, llm=llm, embedder=embedder) as agent:
        agent.add_items(items)
        agent.observe("warmup", "I like quiet documentaries.")  # loads weights, warms llama.cpp
        agent.recommend("warmup", context=CONTEXT, k=5)
        agent.forget("warmup")
        for i in range(users):
            uid = f"llm-bench-{i}"
            chat = CHATS[i % len(CHATS)]
            t = time.perf_counter()
            obs = agent.observe(uid, chat)
            obs_s = time.perf_counter() - t
            t = time.perf_counter()
            rec = agent.recommend(uid, context=CONTEXT, k=5)
            rec_s = time.perf_counter() - t
            t = time.perf_counter()
            compose_only = agent.recommend(uid, context=CONTEXT, k=5, rerank=False)
            compose_s = time.perf_counter() - t
            rows.append({
                "observe_s": obs_s, "recommend_s": rec_s, "recommend_no_rerank_s": compose_s,
                "tokens": {
                    "decompose": [obs.stats.prompt_tokens, obs.stats.completion_tokens, obs.stats.llm_calls],
                    "compose": [compose_only.stats.prompt_tokens, compose_only.stats.completion_tokens,
                                compose_only.stats.llm_calls],
                    "rerank": [rec.stats.prompt_tokens - compose_only.stats.prompt_tokens,
                               rec.stats.completion_tokens - compose_only.stats.completion_tokens,
                               rec.stats.llm_calls - compose_only.stats.llm_calls],
                },
                "fallbacks": obs.stats.fallbacks + rec.stats.fallbacks,
                "invalid_outputs": obs.stats.invalid_outputs + rec.stats.invalid_outputs,
                "reranked_by_llm": sum(r.reranked_by == "llm" for r in rec.recommendations),
                "stage_ms": {"observe": obs.stats.latency_ms, "recommend": rec.stats.latency_ms},
            })
        scoring = _scoring_pass_figures(llm, agent, "llm-bench-0")
        for i in range(users):
            agent.forget(f"llm-bench-{i}")
    # Every LLM stage on, at the model's fitted rank weight (0 for the packaged model: no scoring pass).
    deployed = _observe_recommend(InterestAgent(deploy, llm=llm, embedder=embedder), "deploy-bench", users)
    # What a user gets with default settings: the LLM named by spec, so the stages are "auto" (off for the packaged
    # floor model, on for a model the user chose).
    default = _observe_recommend(InterestAgent(bench_settings(str(store), llm=llm_spec, rerank=None),
                                               embedder=embedder), "default-bench", users)
    # Only the rerank stage forced on (`llm_stages.rerank=True`), the others auto: LLM-written justifications of the
    # top k with the packaged model, at its rank weight.
    justify_only = _observe_recommend(InterestAgent(bench_settings(str(store), llm=llm_spec, rerank=True),
                                                    embedder=embedder), "justify-bench", users)
    # The same chats without any LLM stage, same process, for the LLM-minus-no-LLM figure.
    base: list[float] = []
    with InterestAgent(nollm, llm=None, embedder=embedder) as agent:
        for i in range(users):
            uid = f"nollm-bench-{i}"
            t = time.perf_counter()
            agent.observe(uid, CHATS[i % len(CHATS)])
            agent.recommend(uid, context=CONTEXT, k=5)
            base.append(time.perf_counter() - t)
            agent.forget(uid)
    if tmp is not None:
        tmp.cleanup()

    res = BenchResult(bench="llm_path", params={"users": users, "llm": llm_spec, "rerank_top_n": 20, "k": 5})

    res.settings = settings.model_dump(mode="json")
    res.details = {"rows": rows, "scoring": scoring, "nollm_s": base, "deployed": deployed, "default": default,
                   "justify_only": justify_only,
                   "llm_load_s": load_s,
                   "deploy_rank_weight": deploy.reranker.llm_rank_weights.get(llm.model_id, 0.0)}

    def p50(key: str) -> float:
        return percentile([r[key] for r in rows], 50)

    res.add("observe of 3 chat messages, LLM decomposition p50", p50("observe_s"), "s", "<= 1.5",
            p50("observe_s") <= 1.5)
    res.add("recommend k=5: LLM compose + scoring rerank of 20 + justifications p50", p50("recommend_s"), "s",
            "<= 1.5", p50("recommend_s") <= 1.5)
    res.add("  recommend k=5, LLM compose only p50", p50("recommend_no_rerank_s"), "s", "")
    total = percentile([r["observe_s"] + r["recommend_s"] for r in rows], 50)
    res.add("LLM path minus no-LLM path, observe + recommend p50", total - percentile(base, 50), "s", "<= 3",
            total - percentile(base, 50) <= 3)
    deploy_w = res.details["deploy_rank_weight"]
    res.add(f"recommend k=5, LLM stages on, the deployed rank weight ({deploy_w:g}) p50",
            percentile([d["recommend_s"] for d in deployed], 50), "s", "",
            note="no scoring pass at weight 0" if not deploy_w else "")
    deploy_total = percentile([d["observe_s"] + d["recommend_s"] for d in deployed], 50)
    res.add("  that path minus no-LLM path, observe + recommend p50", deploy_total - percentile(base, 50), "s", "",
            note=_calls_note(deployed))
    default_total = percentile([d["observe_s"] + d["recommend_s"] for d in default], 50)
    res.add("default settings (stages auto) minus no-LLM path, observe + recommend p50",
            default_total - percentile(base, 50), "s", "", note=_calls_note(default))
    justify_total = percentile([d["observe_s"] + d["recommend_s"] for d in justify_only], 50)
    res.add("  only the rerank stage on (justifications) minus no-LLM path, observe + recommend p50",
            justify_total - percentile(base, 50), "s", "", note=_calls_note(justify_only))
    res.add("scoring pass, 20 candidates, KV cache empty", scoring["cold_ms"], "ms", "",
            note=f"{scoring['prompt_tokens']:.0f} prompt tokens, {scoring['cold_threads']:.0f} threads")
    res.add("  raw prompt evaluation of the same tokens (llama.cpp eval)", scoring["raw_eval_ms"], "ms", "",
            note=f"{scoring['prompt_tokens'] / scoring['raw_eval_ms'] * 1000:.0f} tokens/s, "
            f"{scoring['raw_threads']:.0f} threads")
    res.add("  scoring pass, shuffled order (static prefix reused)", scoring["shuffled_ms"], "ms", "",
            note=f"{scoring['shuffled_cached_tokens']:.0f} tokens from the KV cache")
    res.add("  scoring pass, same prompt again (all but 1 token cached)", scoring["same_prompt_ms"], "ms", "")
    for stage in ("decompose", "compose", "rerank"):
        prompt = statistics.fmean(r["tokens"][stage][0] for r in rows)
        completion = statistics.fmean(r["tokens"][stage][1] for r in rows)
        calls = statistics.fmean(r["tokens"][stage][2] for r in rows)
        res.add(f"tokens {stage} (prompt, mean)", prompt, "tokens", "",
                note=f"completion {completion:.0f}, LLM calls {calls:.1f}")
    res.add("invalid outputs / fallbacks per user (mean)", statistics.fmean(r["invalid_outputs"] for r in rows), "",
            "", note=f"fallbacks {statistics.fmean(r['fallbacks'] for r in rows):.1f}")
    res.add("LLM load", load_s, "s", "")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=3)
    ap.add_argument("--llm", default="smollm2")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    res = run(args.users, args.llm)
    print(write_result(res, args.out))
    print_table([res])


if __name__ == "__main__":
    main()
