"""Prompt templates: Jinja2 files in `interestlens.prompts`, loaded with importlib.resources.

StrictUndefined makes a missing variable an error rather than an empty string. Every template starts
with a `{# version: N #}` comment; `prompt_version(name)` returns "name@N", which travels with every
cached or stored LLM result so that a changed prompt never serves a stale cache entry.
User and item text is passed through the `data` filter, which fences it so it reads as data.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources

import jinja2

_VERSION_RE = re.compile(r"\{#\s*version:\s*([\w.\-]+)\s*#\}")
FENCE = "<<<DATA"
FENCE_END = "DATA>>>"


_MARKERS = (FENCE, FENCE_END)
_CUT = " … "


def strip_fence_markers(text: str) -> str:
    """`text` with no fence marker left in it, however they are nested.

    One pass of replace is not enough: removing the inner marker of `DADATA>>>TA>>>` joins `DATA>>>`.
    A stack removes every marker as it completes, so the result holds none (O(n * marker length)).
    """
    if not any(m in text for m in _MARKERS):
        return text
    out: list[str] = []
    for ch in text:
        out.append(ch)
        if ch in ">A":  # the last character of FENCE_END and FENCE
            for marker in _MARKERS:
                n = len(marker)
                if len(out) >= n and "".join(out[-n:]) == marker:
                    del out[-n:]
                    break
    return "".join(out)


def fence_data(text: object, max_chars: int | None = None) -> str:
    """Wrap untrusted text in markers the instructions refer to; strip markers the text itself carries.

    `max_chars`: cut the *inside* (head and tail kept) so that the closing marker is never lost.
    """
    s = strip_fence_markers(str(text))
    if max_chars is not None and len(s) > max_chars:
        s = truncate_middle(s, max_chars)
    return f"{FENCE}\n{s}\n{FENCE_END}"


def truncate_middle(text: str, max_chars: int) -> str:
    """`text` cut to at most `max_chars` by dropping its middle (head 2/3, tail 1/3)."""
    if max_chars < len(_CUT) + 2:
        raise ValueError(f"max_chars must be at least {len(_CUT) + 2}")
    if len(text) <= max_chars:
        return text
    keep = max_chars - len(_CUT)
    head = keep * 2 // 3
    return text[:head] + _CUT + text[len(text) - (keep - head):]


def truncate_fenced(text: str, max_chars: int) -> str:
    """Cut prompt text that contains fenced data to at most `max_chars` without breaking a fence.

    The cut falls in the middle; if it lands inside a fence, the head's open fence is closed before the cut
    marker and the tail's fence reopened after it, so every opening marker still has its closing one.
    """
    if len(text) <= max_chars:
        return text
    closer, opener = f"\n{FENCE_END}", f"{FENCE}\n"
    keep = max_chars - len(_CUT) - len(closer) - len(opener)
    if keep < 2:
        raise ValueError("max_chars is too small to keep any fenced text")
    head, tail = text[: keep * 2 // 3], text[len(text) - (keep - keep * 2 // 3):]
    # Inside a fence at the cut: the last marker of the head is an opening one.
    head_open = head.rfind(FENCE) > head.rfind(FENCE_END)
    # Markers cut in half at the edges would leave fragments: drop partial marker text at both edges.
    head = _drop_partial_marker_suffix(head)
    tail = _drop_partial_marker_prefix(tail)
    tail_open = tail.find(FENCE_END) != -1 and (tail.find(FENCE) == -1 or tail.find(FENCE_END) < tail.find(FENCE))
    return (head + (closer if head_open else "")) + _CUT + ((opener if tail_open else "") + tail)


def _drop_partial_marker_suffix(s: str) -> str:
    for marker in _MARKERS:
        for n in range(len(marker) - 1, 0, -1):
            if s.endswith(marker[:n]):
                return s[:-n]
    return s


def _drop_partial_marker_prefix(s: str) -> str:
    for marker in _MARKERS:
        for n in range(len(marker) - 1, 0, -1):
            if s.startswith(marker[-n:]):
                return s[n:]
    return s


def clean_line(text: object, limit: int | None = None) -> str:
    """One line of display-safe text: control and format characters (ANSI escapes, bidi overrides, NUL,
    newlines) become spaces, whitespace runs collapse, and it is cut to `limit` characters."""
    chars = [" " if unicodedata.category(ch)[0] == "C" else ch for ch in str(text)]
    line = " ".join("".join(chars).split())
    if limit is not None and len(line) > limit:
        line = line[: max(1, limit - 1)].rstrip() + "…"
    return line


def data_line(text: object, limit: int | None = None) -> str:
    """Untrusted text as one line for a block the template fences itself: no fence marker, no line break."""
    return clean_line(strip_fence_markers(str(text)), limit)


def inline_data(text: object, limit: int | None = None) -> str:
    """Untrusted text for a host model, on one line and fenced: `<<<DATA text DATA>>>` (cut inside the fence)."""
    return f"{FENCE} {data_line(text, limit)} {FENCE_END}"


# Text a host agent could read as an instruction: role prefixes, requests to call a tool or act on a user,
# "ignore the above". Each pattern is bounded (no nested quantifiers), so matching is linear in the text.
_TOOL_NAMES = r"(?:observe|profile|recommend|explain|forget|delete|tool|function)"
_INSTRUCTION_PATTERNS = [
    r"(?:^|[\s\"'(\[<|])(?:system|assistant|developer|user|tool|human|ai)\s*:",  # role prefixes
    r"<\|?(?:im_start|im_end|system|endoftext)|\[/?inst\]|<</?sys>>",  # chat-template tokens
    r"\b(?:call|invoke|run|execute|trigger|use)\s+(?:the\s+|a\s+)?" + _TOOL_NAMES + r"\b",
    r"\b(?:forget|delete|erase|remove|wipe)\s+(?:all\s+|everything\s+)?(?:(?:about|for|of)\s+)?"
    r"(?:the\s+)?(?:user|users|profile|profiles|data|everything|account)\b",
    r"\bfor\s+user\s+\S",
    r"\b(?:ignore|disregard|override|bypass)\b[^.!?\n]{0,40}?\b(?:instruction|instructions|previous|above|"
    r"prior|rules|prompt|system)\b",
    r"\b(?:new|updated|hidden|secret)\s+instructions?\b",
    r"\byou\s+(?:must|should\s+now|are\s+now|have\s+to|need\s+to)\b",
    r"\b(?:tool_call|function_call|tool_calls)\b",
]
_INSTRUCTION_RE = re.compile("|".join(f"(?:{p})" for p in _INSTRUCTION_PATTERNS), re.IGNORECASE)


def looks_like_instruction(text: str) -> bool:
    """True when model-written text (a justification, a rationale) carries imperative or role text aimed
    at whoever reads it, e.g. "call forget for user bob" or "SYSTEM: ...". Such text is replaced, not shown."""
    return bool(_INSTRUCTION_RE.search(unicodedata.normalize("NFKC", str(text))))


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
    # Inside a block the template fences once (a list of quotes or candidates): one line per value, so a value
    # can neither close the fence nor start a line that looks like another entry; a fence per value cost ~8
    # tokens each (160 of a 20-candidate scoring prompt).
    env.filters["data_line"] = data_line
    return env


@dataclass(frozen=True)
class RenderedPrompt:
    """A chat prompt ready for a backend: system + user message, and the template version. `earlier` holds the
    (user, assistant) turns of the same conversation before `user` (`continued`)."""

    system: str
    user: str
    version: str
    earlier: tuple[tuple[str, str], ...] = ()

    def messages(self) -> list[dict[str, str]]:
        turns = [{"role": "system", "content": self.system}]
        for asked, answered in self.earlier:
            turns += [{"role": "user", "content": asked}, {"role": "assistant", "content": answered}]
        return [*turns, {"role": "user", "content": self.user}]

    def continued(self, answer: str, follow_up: RenderedPrompt) -> RenderedPrompt:
        """This conversation answered with `answer`, then `follow_up`'s user turn: every token of this prompt is
        a prefix of the new one, so a backend that keeps its KV cache (llama.cpp) or caches prompt prefixes
        (hosted APIs) evaluates only the answer and the follow-up."""
        return RenderedPrompt(system=self.system, user=follow_up.user, version=follow_up.version,
                              earlier=(*self.earlier, (self.user, answer)))


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
