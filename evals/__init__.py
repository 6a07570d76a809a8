"""interestlens.evals: offline recommendation evaluation and prompt-behaviour suites.

Recommendation evaluation (`evals.harness.run_recommend_eval`) reads any folder in the shared dataset format
(catalog.jsonl, cases.<split>.jsonl, optional interactions.jsonl; see ../shared/datasets/README.md), runs baselines
(random, popularity, bm25, embedding, hybrid, itemcf, ease) and interestlens configurations side by side under the
`full` or `sampled` protocol, and writes results.json, report.md and metrics.png. `evals.fitting` fits the fusion by
cross-validation over users (never on a split named test).

Prompt-behaviour suites (`evals.suite.run_suite`) run YAML cases (evals/suites/*.yaml) against one stage and
check what the system guarantees: verbatim evidence, polarity of explicit dislikes, intent bounds, ids within the
catalog/candidates, no other user's data, optional LLM-as-judge rubrics (prompts/judge.j2).

Calling a stage from an external evaluation tool
------------------------------------------------
`interestlens.evals.suite.call_stage(stage, payload, settings=None) -> dict` runs one stage (decompose, compose,
recommend) on a temporary store (catalog "demo" by default, or inline items) and returns JSON-able output:
{"stage", "profile", "sources", "intents" (compose/recommend), "result" (recommend), "stats"}. `payload` takes the
stage fields (`suite.STAGE_FIELDS`: texts, context, history, catalog, candidate_ids, k, other_users); an unknown
stage or field is an InvalidInputError naming it.

promptfoo: use the shipped provider, evals/promptfoo_provider.py, not a hand-written one. promptfoo 0.123 expands
a YAML list in `vars` into one test per element and adds vars of its own (`__evalId`...); the provider takes list
fields as JSON strings (or one plain text), drops promptfoo's own vars and still rejects unknown ones. A working
config with assertions is evals/promptfoo/promptfooconfig.yaml:

    PROMPTFOO_PYTHON=.venv/bin/python npx promptfoo@0.123.1 eval -c evals/promptfoo/promptfooconfig.yaml --no-cache

Its assertions (e.g. `javascript: JSON.parse(output).profile.interests.length > 0`) inspect the JSON. Set the
provider's `llm` (e.g. "openai:gpt-4o-mini" or "gguf:/path.gguf") to evaluate a model's stages.
"""
