"""End-to-end observe + recommend with the bundled local model (SmolLM2-135M via llama.cpp, CPU).

Per new user: observe one text (LLM decomposition), then recommend with LLM intent composition and the LLM
rerank of the top 20 (the scoring pass when the model's `llm_rank_weights` entry is above 0, justifications of
the top k; `bench/llm_path.py` measures the scoring pass itself). Then the same text is observed again
(decomposition cache warm) and recommend repeated. Tokens per stage come from StageStats: decompose from
observe; compose from a recommend without rerank; rerank = full recommend minus compose.

    python -m bench.e2e --n 10000 --users 5
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

from bench.common import DEFAULT_OUT, BenchResult, percentile, print_table, write_result
from bench.fixtures import bench_settings, prepared_store_dir

TARGET_COLD_P50_S = 3.0
TARGET_WARM_P50_S = 1.0
USER_TEXTS = [
    "Just finished rewatching Interstellar and I'm still thinking about the docking scene. I love slow-burn "
    "sci-fi that makes space feel huge and lonely. Please nothing with jump scares, I hate horror.",
    "My favourite evenings are spent with a clever whodunit or a heist movie, the twistier the better. "
    "Romantic comedies bore me to tears.",
    "I grew up on Studio Ghibli and Pixar, and I still watch animated films with my kids every weekend. "
    "We also love documentaries about animals and the ocean.",
    "Give me gritty war films and westerns with morally grey characters. I can't stand musicals.",
    "I'm into period dramas and literary adaptations, anything with beautiful costumes and slow romance.",
    "Lately I've been watching a lot of stand-up and absurd comedies; Monty Python is my all-time favourite.",
    "Big fan of epic fantasy adventures with dragons and quests, Lord of the Rings is my comfort watch.",
    "I like cerebral thrillers about memory and identity, like Memento, and anything by Christopher Nolan.",
]


def _tokens(stats: Any) -> tuple[int, int]:
    return stats.prompt_tokens, stats.completion_tokens


def run(
    n: int = 10_000,
    workdir: Path = Path("/tmp/interestlens-bench"),
    users: int = 5,
    llm_spec: str = "smollm2",
) -> BenchResult:
    from interestlens.agent.embeddings import make_embedder
    from interestlens.agent.llm import make_llm
    from interestlens.agent.service import InterestAgent

    embedder = make_embedder("minilm")
    path = prepared_store_dir(workdir, n, embedder)
    settings = bench_settings(str(path), llm=llm_spec, rerank=True, rerank_top_n=20)
    t = time.perf_counter()
    llm = make_llm(llm_spec, settings)
    load_s = time.perf_counter() - t
    rows: list[dict[str, Any]] = []
    with InterestAgent(settings, llm=llm, embedder=embedder) as agent:
        # One untimed round loads the model's weights into the page cache and warms llama.cpp.
        agent.observe("e2e-warmup", "I like quiet documentaries.")
        agent.recommend("e2e-warmup", k=10)
        agent.forget("e2e-warmup")
        for i in range(users):
            uid = f"e2e-user-{i}"
            text = USER_TEXTS[i % len(USER_TEXTS)] + (f" (note {i})" if i >= len(USER_TEXTS) else "")
            agent.forget(uid)
            t = time.perf_counter()
            obs = agent.observe(uid, text)
            obs_s = time.perf_counter() - t
            t = time.perf_counter()
            rec = agent.recommend(uid, k=10)
            rec_s = time.perf_counter() - t
            t = time.perf_counter()
            compose_only = agent.recommend(uid, k=10, rerank=False)
            compose_only_s = time.perf_counter() - t
            t = time.perf_counter()
            obs_warm = agent.observe(uid, text)  # the same text: decomposition served from the cache
            obs_warm_s = time.perf_counter() - t
            t = time.perf_counter()
            agent.recommend(uid, k=10)
            rec_warm_s = time.perf_counter() - t
            dp, dc = _tokens(obs.stats)
            cp, cc = _tokens(compose_only.stats)
            rp, rc = _tokens(rec.stats)
            rows.append(
                {
                    "user": uid,
                    "cold_s": obs_s + rec_s,
                    "observe_s": obs_s,
                    "recommend_s": rec_s,
                    "recommend_no_rerank_s": compose_only_s,
                    "warm_observe_s": obs_warm_s,
                    "warm_total_s": obs_warm_s + rec_warm_s,
                    "warm_observe_llm_calls": obs_warm.stats.llm_calls,
                    "tokens": {
                        "decompose": {"prompt": dp, "completion": dc, "calls": obs.stats.llm_calls},
                        "compose": {"prompt": cp, "completion": cc, "calls": compose_only.stats.llm_calls},
                        "rerank": {
                            "prompt": rp - cp,
                            "completion": rc - cc,
                            "calls": rec.stats.llm_calls - compose_only.stats.llm_calls,
                        },
                    },
                    "fallbacks": {"observe": obs.stats.fallbacks, "recommend": rec.stats.fallbacks},
                    "invalid_outputs": obs.stats.invalid_outputs + rec.stats.invalid_outputs,
                    "reranked_by_llm": sum(r.reranked_by == "llm" for r in rec.recommendations),
                    "stage_ms": {"observe": obs.stats.latency_ms, "recommend": rec.stats.latency_ms},
                    "warnings": obs.stats.warnings + rec.stats.warnings,
                }
            )
            agent.forget(uid)
    res = BenchResult(bench="e2e", params={"n": n, "users": users, "llm": llm_spec, "rerank_top_n": 20})
    res.settings = settings.model_dump(mode="json")
    res.details = {"rows": rows, "llm_load_s": load_s}

    def p50(key: str) -> float:
        return percentile([r[key] for r in rows], 50)

    res.add(
        "observe + recommend (LLM decompose, compose, rerank 20) p50",
        p50("cold_s"),
        "s",
        f"< {TARGET_COLD_P50_S:.0f}",
        p50("cold_s") < TARGET_COLD_P50_S,
    )
    res.add("  observe (LLM decompose) p50", p50("observe_s"), "s", "")
    res.add("  recommend (LLM compose + rerank 20) p50", p50("recommend_s"), "s", "")
    res.add("  recommend (LLM compose, no rerank) p50", p50("recommend_no_rerank_s"), "s", "")
    res.add(
        "observe again, decomposition cache warm p50",
        p50("warm_observe_s"),
        "s",
        f"< {TARGET_WARM_P50_S:.0f}",
        p50("warm_observe_s") < TARGET_WARM_P50_S,
    )
    res.add(
        "observe (warm cache) + recommend p50",
        p50("warm_total_s"),
        "s",
        f"< {TARGET_WARM_P50_S:.0f}",
        p50("warm_total_s") < TARGET_WARM_P50_S,
    )
    for stage in ("decompose", "compose", "rerank"):
        prompt = statistics.fmean(r["tokens"][stage]["prompt"] for r in rows)
        completion = statistics.fmean(r["tokens"][stage]["completion"] for r in rows)
        calls = statistics.fmean(r["tokens"][stage]["calls"] for r in rows)
        res.add(
            f"tokens {stage} (prompt / completion, mean)",
            prompt,
            "tokens",
            "",
            note=f"completion {completion:.0f}, LLM calls {calls:.1f}",
        )
    res.add(
        "LLM fallbacks per user (mean)",
        statistics.fmean(r["fallbacks"]["observe"] + r["fallbacks"]["recommend"] for r in rows),
        "",
        "",
    )
    res.add("LLM load", load_s, "s", "")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--users", type=int, default=5)
    ap.add_argument("--llm", default="smollm2")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/interestlens-bench"))
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    res = run(args.n, args.workdir, args.users, args.llm)
    print(write_result(res, args.out))
    print_table([res])


if __name__ == "__main__":
    main()
