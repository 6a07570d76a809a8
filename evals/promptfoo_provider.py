"""promptfoo Python provider: runs one interestlens stage per promptfoo test and returns its output as JSON.

Why a shipped provider rather than a snippet to copy: promptfoo (0.123) hands vars over in ways a naive provider
rejects. A YAML list in `vars` is expanded into one test per element, so list fields (texts, history, catalog,
candidate_ids) arrive as strings: here a string that parses as JSON is used as JSON and a plain string is one text.
promptfoo also adds its own vars (`__evalId`, `__evalStepId`, `__repeatIndex`): names starting with "_" are
promptfoo's and are dropped; any other unknown var is a mistake in the config and comes back as an error naming it.

Use (evals/promptfoo/promptfooconfig.yaml is a working example):

    providers:
      - id: file://../promptfoo_provider.py      # relative to the config file
        config: {stage: decompose, llm: none, workers: 1}
    tests:
      - vars: {text: "I love sci-fi but I can't stand horror."}
        assert:
          - type: javascript
            value: JSON.parse(output).profile.interests.some(i => i.name.includes('horror') && i.polarity === 'dislike')

Vars: `stage` (decompose | compose | recommend; else config.stage, else recommend), `text` (one user text) or
`texts` (a JSON list), and the other stage fields of `interestlens.evals.suite.STAGE_FIELDS` (context, history,
catalog, candidate_ids, k, other_users). Without `text`/`texts` the rendered prompt is the user's text.
Provider config: `stage`, `llm` (default: INTERESTLENS_LLM or the packaged default; `none` = no LLM, deterministic
and fast) and `settings` (other Settings fields). The output is call_stage's JSON: {"stage", "profile", "sources",
"intents", "result", "stats"}. promptfoo keeps one worker process, so the embedder loads once (~5-10 s).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

# promptfoo puts this file's folder (evals/) first on sys.path; its modules (data, metrics, report...) must not
# shadow top-level packages, and the package is imported by its real name below
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if not p or Path(p).resolve() != _HERE]

from pydantic import ValidationError  # noqa: E402

from interestlens.agent.config import Settings, flat_names  # noqa: E402
from interestlens.agent.errors import InterestLensError  # noqa: E402
from interestlens.evals.suite import STAGE_FIELDS, call_stage  # noqa: E402

_LIST_FIELDS = ("texts", "history", "catalog", "candidate_ids", "other_users")


def _parse(name: str, value: Any) -> Any:
    """A list/mapping field given as a string: JSON when it parses as JSON, else (texts/history) one element."""
    if name not in _LIST_FIELDS or not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        if name in ("texts", "history", "candidate_ids"):
            return [value]
        raise ValueError(f"var {name!r}: not valid JSON") from None


def stage_arguments(prompt: str, vars_: dict[str, Any], config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(stage, payload) from promptfoo's vars and provider config; raises ValueError on our own unknown vars."""
    ours = {k: v for k, v in vars_.items() if not k.startswith("_")}  # "__evalId"...: promptfoo's own
    stage = str(ours.pop("stage", None) or config.get("stage") or "recommend")
    if "text" in ours:
        if "texts" in ours:
            raise ValueError("give either var 'text' or var 'texts', not both")
        ours["texts"] = [ours.pop("text")]
    unknown = sorted(set(ours) - set(STAGE_FIELDS))
    if unknown:
        raise ValueError(
            f"unknown var(s) {', '.join(unknown)} (stage vars: stage, text, {', '.join(STAGE_FIELDS)})"
        )
    payload = {k: _parse(k, v) for k, v in ours.items() if v is not None}
    if "texts" not in payload:
        payload["texts"] = [prompt]
    if payload.get("k") is not None and isinstance(payload["k"], str):
        payload["k"] = int(payload["k"])
    return stage, payload


def settings_from(config: dict[str, Any]) -> Settings:
    values = dict(config.get("settings") or {})
    known = set(Settings.model_fields) | set(flat_names())
    unknown = sorted(set(values) - known)  # Settings ignores unknown names; a config typo
    if unknown:  # should not silently evaluate the defaults
        raise ValueError(f"unknown setting(s) {', '.join(unknown)}")
    if config.get("llm") is not None:
        values["llm"] = str(config["llm"])
    return Settings(**values)


def call_api(prompt: str, options: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """promptfoo's entry point: {"output": JSON text} on success, {"error": one line} otherwise."""
    config = (options or {}).get("config") or {}
    try:
        stage, payload = stage_arguments(prompt, (context or {}).get("vars") or {}, config)
        out = call_stage(stage, payload, settings_from(config))
    except ValidationError as e:  # bad provider `settings`
        err = e.errors()[0]
        return {"error": f"interestlens: settings.{'.'.join(map(str, err.get('loc', ())))}: {err['msg']}"}
    except (InterestLensError, ValueError) as e:
        return {"error": f"interestlens: {e}"}
    return {"output": json.dumps(out, ensure_ascii=False)}


__all__ = ["call_api", "settings_from", "stage_arguments"]
