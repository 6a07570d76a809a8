"""Linking: find catalog items the user *names* in free text ("something like Super Troopers", "Matrix, The
(1999)").

Titles and text are reduced to the same token keys: lower case, punctuation dropped, "&" -> "and", a trailing
"(year)" removed, the MovieLens "Title, The" form turned around, and a leading article dropped. The index maps
each key (a tuple of tokens) to its items, so linking is one dictionary probe per n-gram of the text: fast for
catalogs of tens of thousands of items. Short or common-word titles ("It", "Click", "Up") only link when a
year
follows, when quoted, or when written capitalised mid-sentence, to keep false links rare.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from interestlens.agent.attribution import mask_source
from interestlens.agent.models import EvidenceSpan, Item, Polarity, SourceText, SubInterest, utcnow
from interestlens.agent.polarity import polarity_of
from interestlens.agent.protocols import Store
from interestlens.agent.text import STOP_WORDS

# A named title is one plain statement of taste (weight 1, as `reweight_interest` documents it), held with more
# confidence than a decomposed clause (LLM 0.7, clusters <= 0.5) and less than feedback (0.95) or a manual entry
# (1.0), because the linker can pick the wrong item of a shared title. Both values date from the first version
# (commit 6e58fe1) and were set by that ordering, not tuned on an evaluation.
TITLE_LINK_WEIGHT = 1.0
TITLE_LINK_CONFIDENCE = 0.9

# Only English articles are dropped from the front: "Die Hard" must keep its "Die".
_ARTICLES = frozenset({"the", "a", "an"})
_CONNECTORS = frozenset({"of", "the", "a", "an", "and", "in", "on", "to", "for", "with", "at", "from", "by"})
_TRAILING_ARTICLE = re.compile(
    r"^(?P<body>.+?),\s*(?P<art>the|a|an|les|le|la|l'|el|il|die|der|das)\s*$", re.I
)
_YEAR_SUFFIX = re.compile(r"\s*\((?P<year>\d{4})(?:[-\u2013]\d{0,4})?\)\s*$")
_AKA = re.compile(r"\s*\((?:a\.k\.a\.|aka)\s+(?P<alt>[^)]*)\)", re.I)
_PAREN = re.compile(r"\s*\([^)]*\)")
# Words: letters/digits with inner apostrophes or periods kept together ("don't", "s.w.a.t").
_TOKEN = re.compile(r"[^\W_]+(?:['\u2019.][^\W_]+)*|&", re.UNICODE)
# A year after a title, allowing the catalog's own "Title, The (1999)" form.
# Bounded whitespace and no two adjacent optional runs of one class: one .match costs O(1), not O(run^2).
_YEAR_AFTER = re.compile(
    r"(?:,\s{0,3}(?:[Tt]he|[Aa]n?)\b)?[!?.\u2026]{0,3}\s{0,3}(?:[(\[]\s{0,3})?(?P<year>(?:19|20)\d{2})\s{0,3}[)\]]?"
)
# "X is my favorite movie": the words after a name that say it is a title.
_TITLE_AFTER = re.compile(
    r"\s{1,3}(?:is|was|has\s{1,3}been|remains)\s{1,3}(?:still\s{1,3})?(?:my|one\s{1,3}of\s{1,3}my|the\s{1,3}best)"
    r"\s{1,3}(?:all[- ]time\s{1,3})?(?:favou?rites?|best|top)?\s{0,3}(?:movies?|films?|books?|novels?|albums?|records?|"
    r"songs?|shows?|series|games?|podcasts?)\b",
    re.IGNORECASE,
)
# A capitalised word used as a modifier ("Italian cooking", "Korean food") is not a title.
_MODIFIED_NOUNS = frozenset(
    """
    cooking food cuisine dishes dish recipes culture history music movies films books songs cinema style
    restaurants restaurant language literature art architecture wine beer coffee tea
    """.split()  # noqa: SIM905 - a word list reads better as text
)

# Words that introduce a named title in chat ("loved the matrix", "something like the notebook").
_MENTION_CUES = frozenset(
    """
    like liked love loved loves watched watch seen saw enjoyed enjoy adore adored as to about than including
    especially favorite favourite rewatched hated dislike disliked
    """.split()  # noqa: SIM905 - a word list reads better as text
)
# Words so common in chat that a title made only of them needs stronger evidence than the words alone:
# the shared stop words plus chat filler, genre words and verbs of watching.
COMMON_WORDS = STOP_WORDS | frozenset(
    """
    above action adventure after again against all always animated animation awesome bad because before being
    below best better between big both boy boys came classic classics click come comedies comedy cool crime day
    documentary doing down drama dramas during each enjoy enjoyed everything family fantasy favorite favourite
    feel felt few film films find first friend friends fun funny further gave girl girls go going gone had happy
    has have having he heat hello her hers herself hey hi him himself his home horror itself kids know last let
    life little looked lot lots made make man many men movie movies musical myself mystery never next nice night
    nor nothing off ok okay old once only other ours out own people romance romantic sad said same saw say scary
    see seen series she show shows still such suggestions superhero sure take tell thank thanks their theirs
    them they think thought three thriller thrillers through time told too two type until up us war watch
    watched watching well western while woman women world yeah yes yours yourself
    """.split()  # noqa: SIM905 - a word list reads better as text
)


def _fold_token(tok: str) -> str:
    if tok == "&":
        return "and"
    return tok.lower().replace("'", "").replace("\u2019", "").replace(".", "")


def title_variants(title: str) -> tuple[list[tuple[str, ...]], int | None]:
    """Token keys a title can be written as, and its year (from a trailing "(YYYY)") if any."""
    t = title.strip()
    year = None
    m = _YEAR_SUFFIX.search(t)
    if m:
        year = int(m.group("year"))
        t = t[: m.start()]
    forms = [t]
    for aka in _AKA.finditer(t):
        forms.append(aka.group("alt"))
    base = _PAREN.sub("", t).strip()  # "(a.k.a. ...)" and other parentheticals out of the main form
    forms[0] = base
    # Foreign-title parentheticals ("Amelie (Fabuleux destin d'Amélie Poulain, Le)") also name the film.
    for par in re.finditer(r"\(([^)]*)\)", t):
        inner = par.group(1)
        if not inner.lower().startswith(("a.k.a", "aka")) and len(inner) > 3:
            forms.append(inner)
    keys: list[tuple[str, ...]] = []
    for form in forms:
        form = form.strip()
        m2 = _TRAILING_ARTICLE.match(form)
        if m2:
            art = m2.group("art")
            form = f"{art}{'' if art.endswith(chr(39)) else ' '}{m2.group('body')}"
        toks = [_fold_token(x) for x in _TOKEN.findall(form)]
        toks = [x for x in toks if x]
        variants = [toks]
        if toks and toks[0] in _ARTICLES and len(toks) > 1:
            variants = [toks[1:], toks]  # "matrix" and "the matrix" both name "Matrix, The"
        for v in variants:
            if v and tuple(v) not in keys:
                keys.append(tuple(v))
    return keys, year


# "Star Wars: Episode IV - A New Hope", "Alien: Covenant", "Mission: Impossible - Fallout": the words before a
# subtitle separator name the series.
_SUBTITLE = re.compile(r"\s*(?::|\s[-\u2013\u2014]\s)\s*")


def series_key(title: str) -> tuple[str, ...] | None:
    """The series a title belongs to ("star", "wars"), from the words before its subtitle, or None.

    Only series names of two or more words with some distinctive word count: "Alien: Covenant" names no
    series "alien" (one word links only as an exact title), "The Fast and the Furious" has no subtitle."""
    t = _PAREN.sub("", _YEAR_SUFFIX.sub("", title.strip())).strip()
    m = _SUBTITLE.search(t)
    if not m or m.start() == 0:
        return None
    toks = tuple(k for k in (_fold_token(x) for x in _TOKEN.findall(t[: m.start()])) if k)
    if toks and toks[0] in _ARTICLES:
        toks = toks[1:]
    content = [k for k in toks if k not in COMMON_WORDS]
    if len(toks) < 2 or sum(len(k) for k in content) < 5:
        return None
    return toks


@dataclass(frozen=True)
class _Entry:
    item: Item
    year: int | None
    popularity: float
    order: int


@dataclass(frozen=True)
class _Token:
    key: str
    start: int
    end: int
    raw: str


class TitleLinker:
    """Index of catalog titles; `link(source)` returns the items a text names, each with its evidence span."""

    def __init__(
        self,
        items: Iterable[Item],
        popularity: Mapping[str, float] | None = None,
        *,
        max_ngram: int = 12,
    ) -> None:
        popularity = popularity or {}
        self._index: dict[tuple[str, ...], list[_Entry]] = {}
        series_entries: dict[tuple[str, ...], list[_Entry]] = {}
        self.max_ngram = 1
        for order, item in enumerate(items):
            keys, year = title_variants(item.title)
            if year is None and isinstance(item.metadata.get("year"), int):
                year = int(item.metadata["year"])  # type: ignore[arg-type]
            entry = _Entry(item, year, float(popularity.get(item.id, 0.0)), order)
            for key in keys:
                if len(key) > max_ngram:
                    continue
                self._index.setdefault(key, []).append(entry)
                self.max_ngram = max(self.max_ngram, len(key))
            series = series_key(item.title)
            if series is not None and len(series) <= max_ngram:
                series_entries.setdefault(series, []).append(entry)
        # A series name links where no title is written that way ("like Star Wars" when the catalog only has
        # "Star Wars: Episode IV - ..."): an exact title always wins, and the series' most popular item stands
        # for it, its year picking another when the text gives one.
        for key, entries in series_entries.items():
            if key not in self._index:
                self._index[key] = entries
                self.max_ngram = max(self.max_ngram, len(key))
        for entries in self._index.values():
            # Most popular first, then catalog order: the default pick when the text gives no year.
            entries.sort(key=lambda e: (-e.popularity, e.order))

    def __len__(self) -> int:
        return len(self._index)

    @staticmethod
    def _tokens(text: str) -> list[_Token]:
        out = []
        for m in _TOKEN.finditer(text):
            key = _fold_token(m.group())
            if key:
                out.append(_Token(key, m.start(), m.end(), m.group()))
        return out

    @staticmethod
    def _is_sentence_start(text: str, pos: int) -> bool:
        j = pos - 1
        while j >= 0 and text[j] in " \t\"'(\u201c":
            j -= 1
        return j < 0 or text[j] in ".!?\n"

    def _strong_enough(self, text: str, toks: list[_Token], i: int, n: int, year_follows: bool) -> bool:
        """Whether a match of tokens i..i+n is a deliberate mention rather than ordinary words."""
        key = [t.key for t in toks[i : i + n]]
        if year_follows:
            return True
        if all(k.isdigit() for k in key):
            return False  # "2010", "1984": far more often a year or a count than a title
        start, end = toks[i].start, toks[i + n - 1].end
        before = text[start - 1] if start > 0 else ""
        after = text[end] if end < len(text) else ""
        if before in "\"'\u201c\u2018*" and after in "\"'\u201d\u2019*" and before:
            return True  # quoted or emphasised
        content = [k for k in key if k not in COMMON_WORDS]
        cue_before = i > 0 and toks[i - 1].key in _MENTION_CUES
        cue_after = bool(_TITLE_AFTER.match(text, end))
        nxt = toks[i + n] if i + n < len(toks) else None
        if nxt is not None and nxt.raw.islower() and nxt.key in _MODIFIED_NOUNS and text[end:nxt.start].isspace():
            return False  # "Italian cooking", "Korean home cooking": a name used as an adjective
        capitalised = all(
            t.raw[0].isupper() or t.raw[0].isdigit() or t.key in _CONNECTORS for t in toks[i : i + n]
        )
        if before == "-" or after == "-":
            return False  # part of a hyphenated word ("Ex-Cop")
        if not content:
            # Only common words ("It", "Up", "Click"): a year or quotes must mark it as a title.
            return False
        if len(key) == 1 or sum(len(k) for k in content) < 5:
            # One distinctive word: only when written as a title, capitalised and not at a sentence start.
            return (
                capitalised
                and (cue_after or not self._is_sentence_start(text, start))
                and len(key[0]) >= 3
                and not self._inside_longer_name(toks, i, n)
            )
        if (
            key[0] in _ARTICLES
            and len(key) >= 2
            and sum(len(k) for k in content) >= 5
            and i > 0
            and toks[i - 1].key in _MENTION_CUES
        ):
            return True  # "something like the matrix": a lower-case title with its article after a cue
        if not capitalised:
            # Lower-case or mixed-case words ("Korean home cooking is ...") are ordinary phrases unless something says
            # title: a cue before ("watched the martian"), "is my favorite movie" after, or a long distinctive run.
            return ((cue_before or cue_after) and len(key) >= 2 and len(content) >= 1) or (
                len(key) >= 4 and len(content) >= 3 and not toks[i].raw[0].isupper()
            )
        return True

    @staticmethod
    def _inside_longer_name(toks: list[_Token], i: int, n: int) -> bool:
        """A capitalised word next to other capitalised words ("Stephen King", "Fellowship of the Ring")."""
        glue = ("of", "the", "a", "an")  # "and" separates two titles, it does not join one name
        j = i - 1
        while j >= 0 and toks[j].key in glue:
            j -= 1
        k = i + n
        while k < len(toks) and toks[k].key in glue:
            k += 1
        for t in (toks[j] if j >= 0 else None, toks[k] if k < len(toks) else None):
            if t is not None and t.raw[0].isupper() and t.raw != "I" and not t.raw.startswith("I'"):
                return True
        return False

    def link(self, source: SourceText) -> list[tuple[Item, EvidenceSpan]]:
        text = source.text
        toks = self._tokens(text)
        candidates: list[tuple[int, int, int, list[_Entry], int | None, int]] = []  # (n, i, end_char, ...)
        for i in range(len(toks)):
            for n in range(min(self.max_ngram, len(toks) - i), 0, -1):
                key = tuple(t.key for t in toks[i : i + n])
                entries = self._index.get(key)
                if not entries:
                    continue
                end_char = toks[i + n - 1].end
                m = _YEAR_AFTER.match(text, end_char)
                year = int(m.group("year")) if m else None
                year_hit = year is not None and any(e.year == year for e in entries)
                if not self._strong_enough(text, toks, i, n, year_hit):
                    continue
                span_end = m.end() if year_hit and m else end_char
                candidates.append((n, i, span_end, entries, year if year_hit else None, toks[i].start))
                break  # longest match at this position
        # A match the year confirms first, then longest, then leftmost; keep non-overlapping.
        candidates.sort(key=lambda c: (c[4] is None, -c[0], c[1]))
        taken: list[tuple[int, int]] = []
        out: list[tuple[int, Item, EvidenceSpan]] = []
        seen_ids: set[str] = set()
        for n, i, span_end, entries, year, _ in candidates:
            lo, hi = i, i + n
            if any(lo < b and a < hi for a, b in taken):
                continue
            taken.append((lo, hi))
            start = toks[i].start
            # Include a leading article the index dropped ("the matrix") in the evidence span.
            if i > 0 and toks[i - 1].key in _ARTICLES and not any(a <= i - 1 < b for a, b in taken):
                start = toks[i - 1].start
            entry = next((e for e in entries if year is not None and e.year == year), entries[0])
            if entry.item.id in seen_ids:
                continue
            seen_ids.add(entry.item.id)
            span = EvidenceSpan(source_id=source.id, start=start, end=span_end, text=text[start:span_end])
            out.append((start, entry.item, span))
        out.sort(key=lambda x: x[0])
        return [(item, span) for _, item, span in out]

    def link_all(self, sources: Iterable[SourceText]) -> list[tuple[Item, EvidenceSpan]]:
        """Links across several sources, each item once (its first mention)."""
        seen: set[str] = set()
        out = []
        for src in sources:
            for item, span in self.link(src):
                if item.id not in seen:
                    seen.add(item.id)
                    out.append((item, span))
        return out


def link_interests(
    linker: TitleLinker,
    sources: Sequence[SourceText],
    polarity: Callable[[str, int, int], Polarity] = polarity_of,
    *,
    now: datetime | None = None,
) -> list[SubInterest]:
    """Titles the user names ("something like Super Troopers") as sub-interests: evidence and retrieval seeds.

    `polarity(text, start, end)` judges the clause around a mention: by default the decomposer's clause rule
    (polarity.polarity_of), so that a mention and the clause it sits in never disagree.
    """
    now = now or utcnow()
    out: list[SubInterest] = []
    for original in sources:
        # Only the user's own statements name titles for them ("my brother loves Alien" links nothing).
        src, _ = mask_source(original)
        for item, span in linker.link(src):
            out.append(
                SubInterest(
                    name=item.title[:120],
                    # The item's own text, so the interest embeds by what the item is about.
                    description=item.text[:200],
                    polarity=polarity(src.text, span.start, span.end),
                    weight=TITLE_LINK_WEIGHT,
                    confidence=TITLE_LINK_CONFIDENCE,
                    evidence=[span],
                    first_seen=src.ts or now,
                    last_seen=src.ts or now,
                    linked_item_ids=[item.id],
                    extractor="title-link",
                )
            )
    return out


class AssistantTitles:
    """Catalog items whose exact title an assistant turn contains (whole words, case-sensitive), in order.

    Lenient on purpose, unlike the user-text linker: an assistant naming an item means that item. The title
    list is rebuilt when the catalog size changes.
    """

    def __init__(self) -> None:
        self._titles: tuple[int, list[tuple[str, str]]] | None = None  # (catalog size, [(title, id)])

    def find(self, store: Store, text: str) -> list[Item]:
        count = store.count_items()
        if self._titles is None or self._titles[0] != count:
            self._titles = (count, [(it.title, it.id) for it in store.iter_items() if len(it.title) >= 3])
        hits: list[tuple[int, int, str]] = []
        for title, item_id in self._titles[1]:
            pos = text.find(title)
            if pos >= 0 and re.search(rf"(?<!\w){re.escape(title)}(?!\w)", text):
                hits.append((pos, -len(title), item_id))
        hits.sort()
        return store.get_items([i for _, _, i in hits])
