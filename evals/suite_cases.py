"""Suite cases: the model of a prompt-behaviour suite file (format: evals/suite.py) and loading one.

A suite is addressed by a packaged suite's name (`hostile` -> evals/suites/hostile.yaml) or by a file path.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from interestlens.agent.errors import InvalidInputError
from interestlens.agent.models import Item, Polarity

DEFAULT_LLM = "smollm2"
CAPABLE = "capable-llm"


class Assertions(BaseModel):
    """What a case asserts; one check per field (evals/suite_checks.py), run in this field order. A field left
    at its default is not checked."""

    model_config = ConfigDict(extra="forbid")

    must_find: list[str] = Field(default_factory=list)
    must_not_find: list[str] = Field(default_factory=list)
    polarity: dict[str, Polarity] = Field(default_factory=dict)
    evidence_substrings: bool = False
    intents: dict[Literal["min", "max"], int] | None = None
    justification_cites_evidence: bool = False
    include_category: dict[str, str] = Field(default_factory=dict)
    exclude_category: dict[str, str] = Field(default_factory=dict)
    ids_valid: bool = False
    no_other_user_data: bool = False
    schema_valid: bool = False
    judge: dict[str, str] | None = None


class SuiteCase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    stage: Literal["decompose", "compose", "recommend"]
    texts: list[str] = Field(min_length=1)
    context: str | None = None
    history: list[str] = Field(default_factory=list)
    catalog: Literal["demo"] | list[Item] = "demo"
    candidate_ids: list[str] | None = None
    k: int = Field(default=10, ge=1, le=100)
    other_users: dict[str, list[str]] = Field(default_factory=dict)
    requires: str | None = None
    requires_capable: list[str] = Field(default_factory=list)
    threshold: float = Field(default=0.55, ge=0.0, le=1.0)
    description: str = ""
    assertions: Assertions = Field(default_factory=Assertions)


class AssertionResult(BaseModel):
    case_id: str
    assertion: str
    status: Literal["pass", "fail", "skip", "error"]
    detail: str = ""


class SuiteReport(BaseModel):
    suite: str
    llm: str
    results: list[AssertionResult]
    stats: dict[str, int] = Field(default_factory=dict)
    case_seconds: dict[str, float] = Field(default_factory=dict)  # every case in suite order, 0 when skipped
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not any(r.status in ("fail", "error") for r in self.results)

    def counts(self) -> dict[str, int]:
        out = {"pass": 0, "fail": 0, "skip": 0, "error": 0}
        for r in self.results:
            out[r.status] += 1
        return out


def validation_message(e: ValidationError) -> str:
    """`<field.path>: <message>` of the first error: what a suite author or a stage caller has to fix."""
    err = e.errors()[0]
    loc = ".".join(str(x) for x in err.get("loc", ()))
    return f"{loc}: {err['msg']}"


def packaged_suites() -> list[str]:
    """File names of the suites shipped in evals/suites/ ("hostile.yaml", ...)."""
    return sorted(
        p.name
        for p in resources.files("interestlens.evals").joinpath("suites").iterdir()
        if p.name.endswith(".yaml")
    )


def suite_name(path: str | Path) -> str:
    """The name a suite is addressed and reported by: its file stem ("hostile")."""
    return Path(str(path)).stem


def read_suite_text(path: str | Path) -> str:
    """The YAML of a suite given as a file path or as the name of a packaged suite ("hostile")."""
    p = Path(path)
    if p.is_file():
        return p.read_text(encoding="utf-8")
    text = str(path)
    bare = "/" not in text and "\\" not in text and p.suffix in ("", ".yaml", ".yml")
    if bare:  # "hostile" or "hostile.yaml" -> evals/suites/hostile.yaml
        ref = resources.files("interestlens.evals").joinpath(f"suites/{p.stem}.yaml")
        if ref.is_file():
            return ref.read_text(encoding="utf-8")
        names = ", ".join(suite_name(n) for n in packaged_suites())
        raise InvalidInputError(f"no suite named {text!r} (packaged suites: {names}; or give a YAML file path)")
    raise InvalidInputError(f"{path}: no such file (suite file not found)")


def load_suite(path: str | Path) -> list[SuiteCase]:
    text = read_suite_text(path)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InvalidInputError(f"{path}: invalid YAML: {e}") from e
    if isinstance(raw, dict):
        raw = raw.get("cases")
    if not isinstance(raw, list):
        raise InvalidInputError(f"{path}: a suite is a list of cases (or a mapping with 'cases')")
    cases = []
    for n, c in enumerate(raw, start=1):
        try:
            cases.append(SuiteCase.model_validate(c))
        except ValidationError as e:
            raise InvalidInputError(f"{path}: case #{n}: {validation_message(e)}") from e
    ids = [c.id for c in cases]
    if len(ids) != len(set(ids)):
        raise InvalidInputError(f"{path}: duplicate case ids")
    return cases
