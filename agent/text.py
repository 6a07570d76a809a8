"""Text utilities shared by the pipeline: input validation, normalisation for matching, clause and chunk
splitting, the stop-word list.

Every splitter returns (start, end) offsets into the original string, never copies, so evidence spans built
from them are verbatim substrings of what the user wrote.
"""

from __future__ import annotations

import bisect
import re
import unicodedata

from interestlens.agent.errors import InvalidInputError

# Typographic variants the LLM (or the user's keyboard) may swap for their ASCII forms.
_CHAR_FOLD = {
    "\u2018": "'",
    "\u2019": "'",
    "\u201a": "'",
    "\u201b": "'",
    "\u2032": "'",
    "`": "'",
    "\u00b4": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u201e": '"',
    "\u201f": '"',
    "\u2033": '"',
    "\u00ab": '"',
    "\u00bb": '"',
    "\u2010": "-",
    "\u2011": "-",
    "\u2012": "-",
    "\u2013": "-",
    "\u2014": "-",
    "\u2015": "-",
    "\u2212": "-",
    "\u2026": "...",
    "\u00a0": " ",
}

# Linear time on any input: the lookbehind starts a match only at the first mark of a run, and the possessive
# quantifier never gives marks back, so a run of "!!!!" followed by a letter costs its length once, not squared.
_SENTENCE_END = re.compile(r"(?<![.!?;])[.!?;]++(?=\s|$)|\n++")
# Clause boundaries inside a sentence are found on words, not by a regex over the text: a pattern like
# `,?\s+but\s+` retries at every position of a whitespace run, which is quadratic (ReDoS, issue 12).
_TOKEN = re.compile(r"[^\s\u2014]+|\u2014")  # words and em dashes; each match consumes, so it is linear
_BREAK_WORDS = frozenset({"but", "however", "although", "though", "whereas", "yet"})
_BREAK_PAIRS = frozenset({("except", "that"), ("and", "also")})
_NEW_STATEMENT = frozenset({"i", "i'm", "i've", "i'd", "my", "we", "also"})
_STATEMENT_VERBS = frozenset(
    {"hate", "love", "like", "dislike", "enjoy", "can't", "cannot", "don't", "do", "really", "am", "'m"}
)
_ALNUM = re.compile(r"\w", re.UNICODE)

# Words that name no topic in any use: function words and the words of asking for something. This is the one
# stop-word list; each use adds the words only it must skip (key phrases: sentiment and chat filler; compose: the
# rest of a request's wording), so that no use drops a word another one needs.
STOP_WORDS = frozenset(
    """
    a about also am an and any anything are as at be been but by can could did do does for from get give got
    here how i if in into is it its just kind like liked me more most much my no not now of on one or our
    over please really should so some something than that the then there these this those to under very was
    we were what when where which who whom why will with would you your love loved great good want need
    maybe recommend recommendation suggest looking look sort new
    """.split()  # noqa: SIM905 - a word list reads better as text
)


def _fold_char(ch: str) -> str:
    if ch in _CHAR_FOLD:
        return _CHAR_FOLD[ch]
    if ch.isspace():
        return " "
    return unicodedata.normalize("NFKC", ch).lower()


def normalise_with_map(text: str, *, alnum_only: bool = False) -> tuple[str, list[int]]:
    """Case/quote/dash/whitespace-folded text plus, for every output char, the index of its source char.

    alnum_only also drops punctuation (runs of non-word chars become one space), for a looser match level.
    """
    out: list[str] = []
    idx: list[int] = []
    for i, ch in enumerate(text):
        folded = _fold_char(ch)
        for f in folded:
            if alnum_only and f == "'":
                continue  # "can't" and "cant" should meet
            if alnum_only and not (f.isalnum() or f == "_"):
                f = " "
            if f == " " and (not out or out[-1] == " "):
                continue  # collapse runs and drop leading whitespace
            out.append(f)
            idx.append(i)
    if out and out[-1] == " ":
        out.pop()
        idx.pop()
    return "".join(out), idx


def normalise_for_match(text: str, *, alnum_only: bool = False) -> str:
    """Fold case, typographic quotes and dashes, NFKC forms and whitespace runs (optionally punctuation
    too)."""
    return normalise_with_map(text, alnum_only=alnum_only)[0]


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink a range to exclude surrounding whitespace and trailing/leading punctuation."""
    # Quotes and brackets are kept: "Click (2006)" must not lose its ")".
    while start < end and (text[start].isspace() or text[start] in ",;:-\u2014"):
        start += 1
    while end > start and (text[end - 1].isspace() or text[end - 1] in ",;:-\u2014.!?"):
        end -= 1
    return start, end


def has_word(text: str) -> bool:
    return bool(_ALNUM.search(text))


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Sentence ranges of text[start:end] (split on . ! ? ; and newlines), trimmed, empty ones dropped."""
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    pos = start
    for m in _SENTENCE_END.finditer(text, start, end):
        spans.append((pos, m.end()))
        pos = m.end()
    if pos < end:
        spans.append((pos, end))
    out = []
    for s, e in spans:
        # Keep the sentence's own end punctuation out of the span; it is not part of the statement.
        s2, e2 = _trim(text, s, e)
        if s2 < e2 and has_word(text[s2:e2]):
            out.append((s2, e2))
    return out


def _clause_breaks(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """(cut_start, cut_end) ranges to remove between clauses of one sentence; one pass over its words."""
    toks = [(m.start(), m.end(), m.group().lower().replace("\u2019", "'")) for m in _TOKEN.finditer(text, start, end)]
    words = [w.strip(",") for _, _, w in toks]
    cuts: list[tuple[int, int]] = []
    i = 1  # a clause never starts with its break word: index 0 is the sentence's own first word
    n = len(toks)
    while i < n - 1:
        prev_end, w = toks[i - 1][1], words[i]
        comma_before = toks[i - 1][2].endswith(",")
        nxt = words[i + 1]
        if toks[i][2] == "\u2014" or toks[i][2] == "-":
            cuts.append((prev_end, toks[i + 1][0]))  # "space - or rather time" and em dashes
            i += 2
            continue
        if w in _BREAK_WORDS:
            cuts.append((prev_end, toks[i + 1][0]))
            i += 2
            continue
        if (w, nxt) in _BREAK_PAIRS and i + 2 < n:
            cuts.append((prev_end, toks[i + 2][0]))
            i += 3
            continue
        if w == "as" and nxt == "well" and i + 3 < n and words[i + 2] == "as":
            cuts.append((prev_end, toks[i + 3][0]))
            i += 4
            continue
        if w in ("and", "or") and comma_before and nxt in _NEW_STATEMENT:
            cuts.append((prev_end, toks[i + 1][0]))  # ", and I ...": a new statement
            i += 1
            continue
        if w == "and" and nxt == "i" and i + 2 < n:
            verb = words[i + 3] if words[i + 2] == "also" and i + 3 < n else words[i + 2]
            if verb in _STATEMENT_VERBS:
                cuts.append((prev_end, toks[i + 1][0]))
                i += 1
                continue
        i += 1
    # An em dash glued to words ("jazz\u2014records") is its own token too, handled above.
    return cuts


def split_clauses(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Clause ranges: sentences, further split at contrastive conjunctions ("but", "although", "and also",
    ...). Linear in the length of the text."""
    out: list[tuple[int, int]] = []
    for s, e in split_sentences(text, start, end):
        pos = s
        for cut_start, cut_end in _clause_breaks(text, s, e):
            out.append((pos, cut_start))
            pos = cut_end
        out.append((pos, e))
    trimmed = [_trim(text, s, e) for s, e in out]
    return [(s, e) for s, e in trimmed if s < e and has_word(text[s:e])]


def chunk_text(text: str, max_chars: int) -> list[tuple[int, int]]:
    """Contiguous ranges of at most max_chars, cut at sentence ends where possible (else at whitespace)."""
    if max_chars <= 0:
        raise ValueError("max_chars must be positive")
    n = len(text)
    if n <= max_chars:
        return [(0, n)] if n else []
    # Candidate cut points: after each sentence end (including the whitespace that follows).
    cuts = sorted({m.end() for m in _SENTENCE_END.finditer(text)} | {n})
    chunks: list[tuple[int, int]] = []
    start = 0
    while start < n:
        limit = start + max_chars
        if limit >= n:
            chunks.append((start, n))
            break
        k = bisect.bisect_right(cuts, limit) - 1  # binary search: linear overall, not cuts x chunks
        best = cuts[k] if k >= 0 and cuts[k] > start else None
        if best is None:
            # One sentence longer than the budget: cut at the last whitespace (or hard at the limit).
            ws = text.rfind(" ", start + 1, limit)
            best = ws + 1 if ws > start else limit
        chunks.append((start, best))
        start = best
    return [(s, e) for s, e in chunks if text[s:e].strip()]


_CONTROL_OK = {"\n", "\t"}


def clean_text(text: str) -> str:
    """Normalise line ends and drop NULs and other control characters (newline and tab are kept)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "".join(ch for ch in text if ch in _CONTROL_OK or unicodedata.category(ch) not in ("Cc", "Cs"))


def decode_user_bytes(data: bytes) -> str:
    """UTF-8 (BOM allowed) to a clean str; any other encoding is refused with the offending byte offset."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InvalidInputError(
            f"input is not valid UTF-8 (bad byte 0x{data[e.start]:02x} at offset {e.start}); "
            "convert the file to UTF-8 and try again"
        ) from None
    return clean_text(text)


def validate_text(text: object, max_chars: int) -> str:
    """Return the cleaned text, or raise InvalidInputError when it is not a string, empty or too long."""
    if isinstance(text, bytes):
        text = decode_user_bytes(text)
    if not isinstance(text, str):
        raise InvalidInputError(f"text must be a string, got {type(text).__name__}")
    cleaned = clean_text(text)
    if all(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf") for ch in cleaned):
        raise InvalidInputError("text is empty (only whitespace, control or invisible format characters)")
    if len(cleaned) > max_chars:
        raise InvalidInputError(
            f"text is {len(cleaned):,} characters, over the limit of {max_chars:,} "
            "(settings.decompose.max_text_chars); "
            "split it into smaller pieces"
        )
    return cleaned
