"""Prompt templates: Jinja2 files in `interestlens.prompts`, loaded with importlib.resources.

StrictUndefined makes a missing variable an error rather than an empty string. Every template starts
with a `{# version: N #}` comment; `prompt_version(name)` returns "name@N", which travels with every
cached or stored LLM result so that a changed prompt never serves a stale cache entry.
User and item text is passed through the `data` filter, which fences it so it reads as data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

import jinja2

_VERSION_RE = re.compile(r"\{#\s*version:\s*([\w.\-]+)\s*#\}")
FENCE = "<<<DATA"
FENCE_END = "DATA>>>"


def fence_data(text: object) -> str:
    """Wrap untrusted text in markers the instructions refer to; strip markers the text itself carries."""
    s = str(text).replace(FENCE, "").replace(FENCE_END, "")
    return f"{FENCE}\n{s}\n{FENCE_END}"


class _PackageLoader(jinja2.BaseLoader):
    def get_source(self, environment: jinja2.Environment, template: str):  # type: ignore[override]
        ref = resources.files("interestlens.prompts").joinpath(template)
        if not ref.is_file():
            raise jinja2.TemplateNotFound(template)
        source = ref.read_text(encoding="utf-8")
        return source, None, lambda: True


@cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=_PackageLoader(),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["data"] = fence_data
    return env


@dataclass(frozen=True)
class RenderedPrompt:
    """A chat prompt ready for a backend: system + user message, and the template version."""

    system: str
    user: str
    version: str

    def messages(self) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user}]


@cache
def prompt_version(name: str) -> str:
    source, _, _ = _env().loader.get_source(_env(), f"{name}.j2")  # type: ignore[union-attr]
    m = _VERSION_RE.search(source)
    if not m:
        raise ValueError(f"prompt template {name}.j2 has no '{{# version: N #}}' header")
    return f"{name}@{m.group(1)}"


def render(name: str, **variables: object) -> RenderedPrompt:
    """Render `prompts/<name>.j2`. The template defines blocks `system` and `user`."""
    template = _env().get_template(f"{name}.j2")
    ctx = template.new_context(dict(variables))
    system = "".join(template.blocks["system"](ctx)).strip()
    user = "".join(template.blocks["user"](ctx)).strip()
    return RenderedPrompt(system=system, user=user, version=prompt_version(name))
