"""interestlens.evals: offline recommendation evaluation and prompt-behaviour suites.

Recommendation evaluation (`evals.harness.run_recommend_eval`) reads any folder in the shared dataset format
(catalog.jsonl, cases.<split>.jsonl, optional interactions.jsonl; see ../shared/datasets/README.md), runs baselines
(random, popularity, bm25, embedding, hybrid, itemcf) and interestlens configurations side by side under the `full`
or `sampled` protocol, and writes results.json, report.md and metrics.png. `evals.harness.tune_fusion_weights`
chooses retrieval fusion weights on a dev split only.

Prompt-behaviour suites (`evals.suite.run_suite`) run YAML cases (evals/suites/*.yaml) against one stage and
check what the system guarantees: verbatim evidence, polarity of explicit dislikes, intent bounds, ids within the
catalog/candidates, no other user's data, optional LLM-as-judge rubrics (prompts/judge.j2).

Calling a stage from an external evaluation tool
------------------------------------------------
`interestlens.evals.suite.call_stage(stage, payload, settings=None) -> dict` runs one stage on a temporary store
(catalog "demo" by default, or inline items) and returns JSON-able output: {"stage", "profile", "sources",
"intents" (compose/recommend), "result" (recommend), "stats"}. `payload` takes the suite case fields: texts,
context, history, catalog, candidate_ids, k, other_users. For example, promptfoo's Python provider
(`providers: [{id: "file://il_provider.py"}]`) calls a module like:

    # il_provider.py
    import json
    from interestlens.evals.suite import call_stage

    def call_api(prompt, options, context):
        vars = context["vars"]  # e.g. {"stage": "decompose", "texts": ["I love sci-fi"], "context": null}
        out = call_stage(vars.get("stage", "recommend"), {k: v for k, v in vars.items() if k != "stage"})
        return {"output": json.dumps(out)}

and its assertions (e.g. `javascript: JSON.parse(output).profile.interests.length > 0`) inspect the JSON.
Set INTERESTLENS_LLM (e.g. "openai:gpt-4o-mini" or "gguf:/path.gguf") to evaluate another model.
"""
