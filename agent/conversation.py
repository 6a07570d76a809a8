"""Chat input: messages in, the user's preference turns out.

`to_messages` accepts the OpenAI/LangChain shape (`[{"role", "content"}]`, LangChain `BaseMessage` objects,
or `ChatMessage`). `plan_turns` decides, per user turn, what `observe` does with it:
- `preference`: observed (decomposed; the clause-level filters in decompose/attribution still apply);
- `request`: a request, question or chit-chat ("what should I listen to tonight?", "thanks"; see
  agent/request_detection.py): not stored;
- `reference`: a short reply about what the assistant just suggested ("yes, more like that", "not that one"):
  a like or dislike of the first catalog item the previous assistant turn named, grounded in the user's words.
Assistant, system and tool turns are context only: never stored, never evidence.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from interestlens.agent.api_models import ChatMessage
from interestlens.agent.errors import InvalidInputError
from interestlens.agent.models import Item, Polarity
from interestlens.agent.request_detection import is_request_turn

MAX_MESSAGES = 200
_ROLE_ALIASES = {"human": "user", "ai": "assistant", "assistant": "assistant", "user": "user",
                 "system": "system", "developer": "system", "tool": "tool", "function": "tool"}

# Replies about the previous suggestion. Negative patterns first: "not like that" is not "like that".
_REFERENCE_NEG = re.compile(
    r"\b(?:not (?:that|this|it|those|these)(?: one)?|no(?:pe)?,? (?:not )?(?:that|this)|less like (?:that|this)|"
    r"not for me|(?:hated|disliked|didn'?t like|did not like|don'?t like|do not like|can'?t stand) "
    r"(?:that|this|it|those|these)(?: one)?|nothing like (?:that|this))\b",
    re.IGNORECASE,
)
_REFERENCE_POS = re.compile(
    r"\b(?:more like (?:that|this|it|those|these)(?: one)?|(?:something|anything) like (?:that|this|it)|"
    r"(?:loved|liked|enjoyed|love|like|enjoy|adore) (?:that|this|it|those|these)(?: one)?|"
    r"(?:that|this)(?: one)? (?:sounds|looks) (?:good|great|perfect|interesting)|sounds (?:good|great|perfect)|"
    r"^\s*(?:yes|yeah|yep|yup|exactly|perfect)\b)",
    re.IGNORECASE,
)
_MAX_REFERENCE_CHARS = 120  # longer turns are ordinary text: decompose them
_ID_TOKEN = re.compile(r"[\w.:@-]{1,256}")

TurnKind = Literal["preference", "request", "reference"]


@dataclass
class Turn:
    index: int
    text: str
    kind: TurnKind
    polarity: Polarity = Polarity.LIKE  # for references
    span: tuple[int, int] = (0, 0)  # the referring words, for references
    item: Item | None = None  # for references: the item the previous assistant turn named


@dataclass
class TurnPlan:
    preferences: list[Turn] = field(default_factory=list)
    references: list[Turn] = field(default_factory=list)
    requests: list[Turn] = field(default_factory=list)


def _content_text(content: Any) -> str:
    """OpenAI/LangChain content: a string or a list of parts ({"type": "text", "text": ...})."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for p in content:
            if isinstance(p, str):
                parts.append(p)
            elif isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str):
                parts.append(p["text"])
        return "\n".join(parts)
    if content is None:
        return ""
    raise InvalidInputError(f"message content must be text, got {type(content).__name__}")


def is_message_like(value: Any) -> bool:
    """A chat message in any accepted shape (and not a plain text)."""
    if isinstance(value, ChatMessage):
        return True
    if isinstance(value, dict):
        return "role" in value and "content" in value
    return hasattr(value, "content") and hasattr(value, "type") and not isinstance(value, str | bytes)


def to_messages(raw: Sequence[Any]) -> list[ChatMessage]:
    if len(raw) > MAX_MESSAGES:
        raise InvalidInputError(f"at most {MAX_MESSAGES} messages per call, got {len(raw)}")
    out: list[ChatMessage] = []
    for n, m in enumerate(raw, start=1):
        if isinstance(m, ChatMessage):
            out.append(m)
            continue
        if isinstance(m, dict):
            role, content, remember = m.get("role"), m.get("content"), m.get("remember", True)
        elif is_message_like(m):  # LangChain BaseMessage: .type is human | ai | system | tool | chat
            role = getattr(m, "role", None) if m.type == "chat" else m.type
            content = m.content
            remember = (getattr(m, "additional_kwargs", None) or {}).get("remember", True)
        else:
            raise InvalidInputError(f"message #{n}: expected {{role, content}}, got {type(m).__name__}")
        mapped = _ROLE_ALIASES.get(str(role).lower()) if isinstance(role, str) else None
        if mapped is None:
            raise InvalidInputError(f"message #{n}: unknown role {role!r} (use user, assistant, system or tool)")
        try:
            out.append(ChatMessage(role=mapped, content=_content_text(content), remember=remember))
        except ValidationError as e:
            raise InvalidInputError(f"message #{n}: {e.errors()[0]['msg']}") from e
    return out


def classify_turn(text: str) -> tuple[TurnKind, Polarity, tuple[int, int]]:
    """What a user turn is (see the module docstring); for references, the polarity and the referring span."""
    stripped = text.strip()
    if len(stripped) <= _MAX_REFERENCE_CHARS:
        for pattern, polarity in ((_REFERENCE_NEG, Polarity.DISLIKE), (_REFERENCE_POS, Polarity.LIKE)):
            if pattern.search(text):
                # The whole reply is the evidence: the user's own words, verbatim.
                start = len(text) - len(text.lstrip())
                return "reference", polarity, (start, start + len(stripped))
    if is_request_turn(text):
        return "request", Polarity.LIKE, (0, 0)
    return "preference", Polarity.LIKE, (0, 0)


def items_named(
    text: str, find_ids: Callable[[list[str]], list[Item]], link: Callable[[str], list[Item]]
) -> list[Item]:
    """Catalog items an assistant turn names, in order of mention: exact ids first, then linked titles."""
    tokens = list(dict.fromkeys(_ID_TOKEN.findall(text)))[:500]
    by_id = {it.id: it for it in find_ids(tokens)} if tokens else {}
    found: list[tuple[int, Item]] = []
    for item_id, item in by_id.items():
        found.append((text.find(item_id), item))
    for item in link(text):
        if item.id not in by_id:
            pos = text.lower().find(item.title.lower()) if item.title else -1
            found.append((pos if pos >= 0 else len(text), item))
    found.sort(key=lambda p: p[0])
    return list({it.id: it for _, it in found}.values())


def plan_turns(
    messages: Sequence[ChatMessage],
    find_ids: Callable[[list[str]], list[Item]],
    link: Callable[[str], list[Item]],
) -> TurnPlan:
    plan = TurnPlan()
    last_assistant: str | None = None
    for k, msg in enumerate(messages):
        if msg.role != "user":
            if msg.role == "assistant" and msg.content.strip():
                last_assistant = msg.content
            continue
        if not msg.remember:
            continue
        kind, polarity, span = classify_turn(msg.content)
        turn = Turn(index=k, text=msg.content, kind=kind, polarity=polarity, span=span)
        if kind == "reference":
            named = items_named(last_assistant, find_ids, link) if last_assistant else []
            if named:
                turn.item = named[0]
                plan.references.append(turn)
            else:  # nothing to refer to: "yes, more like that" with no suggestion is not a taste
                turn.kind = "request"
                plan.requests.append(turn)
        elif kind == "request":
            plan.requests.append(turn)
        else:
            plan.preferences.append(turn)
    return plan
