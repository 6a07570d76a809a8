"""A realistic synthetic catalog at any size: combinatorial titles, genres, moods, settings and descriptions.

Texts look like the demo/MovieLens catalogs ("Title (Year). <one or two sentences>. Genres: a, b. Mood: x."),
with a similar spread of lengths (~80-400 characters), so embedding and index costs per item are comparable.
Deterministic for a given seed; ids are `syn-<n>` so they never collide with real catalogs.

    python bench/synthetic.py --n 100000 --out /tmp/syn100k.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterator
from pathlib import Path

from interestlens.agent.models import Item

DOMAINS = ("movie", "book", "game", "music", "podcast")
ADJ = (
    "Silent",
    "Broken",
    "Golden",
    "Last",
    "Hidden",
    "Crimson",
    "Endless",
    "Lost",
    "Iron",
    "Frozen",
    "Wild",
    "Midnight",
    "Distant",
    "Burning",
    "Hollow",
    "Electric",
    "Quiet",
    "Savage",
    "Paper",
    "Glass",
    "Velvet",
    "Northern",
    "Forgotten",
    "Restless",
    "Bright",
    "Ashen",
    "Secret",
    "Final",
    "Little",
    "Sunken",
)
NOUN = (
    "Harbor",
    "Kingdom",
    "Signal",
    "Garden",
    "Empire",
    "River",
    "Machine",
    "Orchard",
    "Frontier",
    "Lantern",
    "Citadel",
    "Witness",
    "Voyage",
    "Circuit",
    "Winter",
    "Archive",
    "Island",
    "Tide",
    "Crown",
    "Engine",
    "Mirror",
    "Desert",
    "Carnival",
    "Station",
    "Labyrinth",
    "Comet",
    "Forest",
    "Cathedral",
    "Horizon",
    "Echo",
)
SUFFIX = (
    "",
    "",
    "",
    " II",
    " Returns",
    ": Origins",
    " of the North",
    " in Winter",
    ": The Reckoning",
    " Redux",
)
GENRES = (
    "science fiction",
    "horror",
    "comedy",
    "drama",
    "romance",
    "thriller",
    "mystery",
    "fantasy",
    "documentary",
    "animation",
    "western",
    "war",
    "crime",
    "adventure",
    "historical",
    "musical",
    "strategy",
    "puzzle",
    "jazz",
    "folk",
    "electronic",
    "true crime",
    "biography",
    "poetry",
)
MOODS = (
    "tense",
    "cozy",
    "melancholic",
    "uplifting",
    "dark",
    "whimsical",
    "cerebral",
    "heartfelt",
    "gritty",
    "epic",
    "contemplative",
    "playful",
    "bleak",
    "romantic",
    "suspenseful",
    "nostalgic",
)
WHO = (
    "a retired detective",
    "two estranged sisters",
    "a young cartographer",
    "an exiled prince",
    "a burned-out engineer",
    "a travelling circus",
    "a small-town teacher",
    "a crew of smugglers",
    "an android",
    "a jazz trumpeter",
    "a grieving widower",
    "a teenage hacker",
    "a rural doctor",
    "an ambitious chef",
    "a lighthouse keeper",
    "a band of misfits",
)
WHAT = (
    "uncovers a conspiracy",
    "searches for a missing child",
    "tries to rebuild a ruined family business",
    "is drawn into a decades-old feud",
    "must survive a brutal winter",
    "races to stop a catastrophe",
    "falls in love against every rule",
    "confronts the ghosts of the past",
    "plans one last heist",
    "explores an uncharted world",
    "fights to keep a dying town alive",
    "learns a dangerous secret",
)
WHERE = (
    "in post-war Vienna",
    "on a generation ship",
    "in a drowned coastal city",
    "across the Sahara",
    "in 1920s Shanghai",
    "on a remote Scottish island",
    "in a near-future Lagos",
    "in feudal Japan",
    "beneath the Arctic ice",
    "in a sprawling megacity",
    "on the American frontier",
    "inside a dream",
)
EXTRA = (
    "Critics praised its pacing and score.",
    "Told in alternating timelines.",
    "A cult favourite with a devoted following.",
    "Based on a true story.",
    "Features long single-take sequences.",
    "Slow burn with a shattering final act.",
    "",
)


def synthetic_items(n: int, seed: int = 0, start: int = 0) -> Iterator[Item]:
    """Items syn-<start>..syn-<start+n-1>; the same (n, seed, start) always yields the same items."""
    rng = random.Random(seed)
    for k in range(start, start + n):
        domain = rng.choice(DOMAINS)
        title = f"The {rng.choice(ADJ)} {rng.choice(NOUN)}{rng.choice(SUFFIX)}"
        year = rng.randint(1950, 2025)
        genres = rng.sample(GENRES, rng.randint(1, 3))
        moods = rng.sample(MOODS, rng.randint(1, 2))
        sentence = f"{rng.choice(WHO).capitalize()} {rng.choice(WHAT)} {rng.choice(WHERE)}."
        if rng.random() < 0.4:
            sentence += f" Meanwhile {rng.choice(WHO)} {rng.choice(WHAT)}."
        extra = rng.choice(EXTRA)
        text = (f"{title} ({year}). {sentence} {extra} Genres: {', '.join(genres)}. Mood: {', '.join(moods)}.").replace(
            "  ", " "
        )
        yield Item(
            id=f"syn-{k}",
            title=f"{title} ({year})",
            text=text,
            metadata={"domain": domain, "genres": genres, "year": year, "synthetic": True},
        )


def load_catalog(n: int, base: Path | None = None, seed: int = 0) -> list[Item]:
    """`n` items: the real catalog at `base` (MovieLens by default) first, padded with synthetic items."""
    items: list[Item] = []
    if base is not None and base.exists():
        from interestlens.stores.catalog_io import read_catalog_jsonl

        items = read_catalog_jsonl(base)[:n]
    if len(items) < n:
        items += list(synthetic_items(n - len(items), seed=seed))
    return items


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    with args.out.open("w", encoding="utf-8") as f:
        for item in synthetic_items(args.n, args.seed):
            f.write(json.dumps(item.model_dump(mode="json")) + "\n")
    print(f"wrote {args.n} items to {args.out}")


if __name__ == "__main__":
    main()
