"""KV prefix reuse of the scoring pass (llama.cpp): the same prompt cold, again (all but one token cached), and
with only its tail changed (the static prefix cached), against the raw evaluation speed of the same tokens.

    python -m bench.kv_prefix
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from bench.common import DEFAULT_OUT, BenchResult, print_table, write_result

STATIC = "Pick the candidate that fits the user best. Answer with its letter only.\n" + (
    "The user loves slow-burn science fiction, mellow jazz piano and clever heist films; no horror. " * 6
)
CANDIDATES = [f"({chr(65 + n)}) candidate item number {n}, a film about topic {n * 7 % 11}" for n in range(20)]


def run(repeats: int = 3) -> BenchResult:
    from interestlens.agent.config import Settings
    from interestlens.agent.llm import make_llm
    from interestlens.agent.prompting import RenderedPrompt

    llm = make_llm("smollm2", Settings(store="unused"))
    labels = [chr(65 + n) for n in range(20)]

    def prompt(order: list[str]) -> RenderedPrompt:
        return RenderedPrompt(system="Answer with one letter.", user=STATIC + "\n".join(order), version="bench@1")

    cold, same, tail, raw = [], [], [], []
    cached_tail = 0
    for r in range(repeats):
        llm._llama.reset()
        first = llm.score_labels(prompt(CANDIDATES), labels)
        cold.append(first.usage.latency_ms)
        same.append(llm.score_labels(prompt(CANDIDATES), labels).usage.latency_ms)
        shuffled = CANDIDATES[r + 1 :] + CANDIDATES[: r + 1]
        t = llm.score_labels(prompt(shuffled), labels)
        tail.append(t.usage.latency_ms)
        cached_tail = t.usage.cached_prompt_tokens
        messages, _ = llm._fit_messages(prompt(CANDIDATES), 1)
        tokens = llm._llama.tokenize(llm._chat_text(messages).encode("utf-8"), add_bos=False, special=True)
        llm._llama.reset()
        t0 = time.perf_counter()
        llm._llama.eval(tokens)
        raw.append((time.perf_counter() - t0) * 1000.0)
    n_tokens = first.usage.prompt_tokens
    res = BenchResult(bench="kv_prefix", params={"repeats": repeats, "prompt_tokens": n_tokens})
    med = statistics.median
    res.add("scoring pass, KV cache empty (median)", med(cold), "ms", "", note=f"{n_tokens} prompt tokens")
    res.add("  raw llama.cpp eval of the same tokens", med(raw), "ms", "",
            note=f"{n_tokens / med(raw) * 1000:.0f} tokens/s")
    res.add("  same prompt again (all but 1 token cached)", med(same), "ms", "")
    res.add("  candidates reordered (static prefix cached)", med(tail), "ms", "",
            note=f"{cached_tail} of {n_tokens} tokens from the KV cache")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    res = run(args.repeats)
    print(write_result(res, args.out))
    print_table([res])


if __name__ == "__main__":
    main()
