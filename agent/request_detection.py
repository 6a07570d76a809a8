"""Request detection: whether the user's words ask for something (or chat) rather than state a taste.

Asking is never a preference: "what should I watch tonight?" must not become an interest in "tonight". Two
granularities, one place:
- a chat turn (`is_request_turn`, used by agent/conversation.py): a request when it asks and states no taste
  anywhere; a turn that does both is a preference turn, whose request clauses the clause check then drops;
- a clause (`is_request`, used by agent/clauses.py): a request when it opens like a question or a request, or
  ends in "?", unless it carries its own taste cue ("any more like Alien? I love it").
"""

from __future__ import annotations

import re

# ---------------------------------------------------------------------------------------------------- turns

# A stated taste anywhere in the turn makes it a preference turn (clause filters drop the request part).
_PREFERENCE = re.compile(
    r"\b(?:i|i'm|im|i am|we)\b[^.?!]{0,40}?\b(?:love[sd]?|like[sd]?|enjoy\w*|adore\w*|prefer\w*|hate[sd]?|"
    r"dislike[sd]?|detest\w*|into|fan of|favou?rite|can'?t stand|cannot stand|don'?t (?:like|enjoy|care for)|"
    r"not a fan|bored by|obsessed)\b"
    r"|\btoo \w+ for me\b|\b(?:is|are) my favou?rite\b|\bno more \w+|\bnot for me\b",
    re.IGNORECASE,
)
# "I'd like a film", "I would love something": a wish for an item, not a taste.
_WISH = re.compile(r"\b(?:i'?d|i would|i'?ll|could i)\s+(?:like|love|enjoy|prefer)\b", re.IGNORECASE)
_TURN_REQUEST = re.compile(
    r"\?\s*$|^\s*(?:what|which|who|where|when|why|how|any|anything|can you|could you|would you|will you|please|"
    r"recommend|suggest|give me|show me|find me|tell me|list|got any|i need|i want|i'?m looking for|"
    r"looking for|help me)\b"
    r"|\b(?:recommend\w*|suggest\w*|what should i|something (?:for|to)|any (?:ideas|suggestions|tips))\b"
    r"|\bfor (?:tonight|today|tomorrow|this (?:evening|weekend)|the weekend)\b",
    re.IGNORECASE,
)
_CHITCHAT = re.compile(
    r"^\s*(?:hi|hello|hey|yo|thanks|thank you|thx|ok|okay|cool|great|nice|bye|goodbye|good (?:morning|night|"
    r"evening|afternoon)|how are you|lol|hmm+|sure|fine)\b[\s!.,?:)]*(?:there|again|so much|a lot)?[\s!.,?:)]*$",
    re.IGNORECASE,
)


def is_request_turn(text: str) -> bool:
    """Whether a whole user turn is a request, a question or chit-chat ("thanks") rather than a preference."""
    stripped = text.strip()
    if not stripped or _CHITCHAT.match(stripped):
        return True
    if _PREFERENCE.search(_WISH.sub(" ", text)):
        return False
    return bool(_WISH.search(text) or _TURN_REQUEST.search(stripped))


# -------------------------------------------------------------------------------------------------- clauses

# A request or chat filler, not a statement of taste ("what should I watch?", "i am open to any movie").
_CLAUSE_REQUEST = re.compile(
    r"\s{0,3}(?:(?:so\s{1,3}|and\s{1,3}|ok\s{1,3}|well\s{1,3})?(?:please\s{1,3})?"
    r"(?:recommend|suggest|tell|give|show|find|send|get)\s{1,3}(?:me|us)\b"
    r"|(?:what|which|who|where|how|when|why|can|could|would|will|do|does|did|is|are|have|has|any)\b"
    r"|i(?:'m|\s{1,3}am)?\s{1,3}(?:open\s{1,3}to|looking\s{1,3}for|searching\s{1,3}for|in\s{1,3}the\s{1,3}mood)\b"
    r"|i\s{1,3}(?:want|need|would\s{1,3}like|'d\s{1,3}like)\s{1,3}(?:to\s{1,3}(?:watch|see|read|hear)|a|an|some|any|"
    r"something)\b|(?:thanks|thank\s{1,3}you|whatever|sounds\s{1,3}good|that\s{1,3}sounds|ok|okay|sure)\b"
    r"|we\s{1,3}(?:had|went|did|were)\b)",
    re.IGNORECASE,
)
_TASTE_CUE = re.compile(
    r"\b(?:love[sd]?|like[sd]?|enjoy(?:s|ed)?|adore[sd]?|favou?rite|into|fan|hate[sd]?|can'?t\s+stand|prefer)\b",
    re.IGNORECASE,
)


def is_request(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] asks for something or chats rather than states a taste.

    A question or request clause with its own taste cue ("any more like Alien? I love it") is still a statement.
    """
    clause = text[start:end]
    tail = text[end : end + 3]
    if _TASTE_CUE.search(clause) and not clause.lower().lstrip().startswith(("what", "which", "how")):
        return False
    return bool(_CLAUSE_REQUEST.match(clause)) or "?" in tail
