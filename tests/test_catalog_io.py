"""catalog_io: the ../shared/datasets JSON-lines format, with errors that name file and line."""

from __future__ import annotations

import json
import logging

import pytest

from interestlens.agent.errors import InvalidInputError
from interestlens.agent.models import Interaction, SourceText
from interestlens.stores.catalog_io import read_catalog_jsonl, read_interactions_jsonl, read_jsonl

GOOD = [
    {
        "id": "2571",
        "title": "Matrix, The (1999)",
        "text": "Matrix, The (1999). Genres: Action, Sci-Fi",
        "metadata": {"genres": ["Action", "Sci-Fi"], "year": 1999, "tags": []},
    },
    {"id": 1, "title": "Toy Story (1995)", "metadata": {"year": 1995}},
]


def write_lines(path, lines: list[str | bytes]) -> None:
    path.write_bytes(b"\n".join(line if isinstance(line, bytes) else line.encode() for line in lines) + b"\n")


def test_reads_catalog_exactly(tmp_path):
    p = tmp_path / "catalog.jsonl"
    write_lines(p, [json.dumps(GOOD[0]), "", "   ", json.dumps(GOOD[1])])
    items = read_catalog_jsonl(p)
    assert [i.id for i in items] == ["2571", "1"]
    assert items[0].metadata == {"genres": ["Action", "Sci-Fi"], "year": 1999, "tags": []}
    assert items[1].text == "Toy Story (1995)"  # text defaults to the title
    assert items.duplicates == 0


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"id": "x", "title": "A"', "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"id": "x"}', "needs a title or text"),
        ('{"title": "no id"}', "id"),
        ('{"id": "x", "title": "A", "metadata": {"nested": {"a": 1}}}', "metadata"),
    ],
)
def test_bad_line_names_file_and_line(tmp_path, line, reason):
    p = tmp_path / "catalog.jsonl"
    write_lines(p, [json.dumps(GOOD[0]), json.dumps(GOOD[1]), line])
    with pytest.raises(InvalidInputError, match=r"^catalog\.jsonl:3: ") as e:
        read_catalog_jsonl(p)
    assert reason in str(e.value)


def test_non_utf8_names_the_line(tmp_path):
    p = tmp_path / "catalog.jsonl"
    write_lines(p, [json.dumps(GOOD[0]), b'{"id": "9", "title": "Caf\xe9"}'])
    with pytest.raises(InvalidInputError, match=r"catalog\.jsonl:2: not valid UTF-8 \(byte 0xe9"):
        read_catalog_jsonl(p)


def test_bom_and_unicode_are_fine(tmp_path):
    p = tmp_path / "catalog.jsonl"
    p.write_text("\ufeff" + json.dumps({"id": "a", "title": "Amélie (2001) 日本"}, ensure_ascii=False) + "\n")
    assert read_catalog_jsonl(p)[0].title == "Amélie (2001) 日本"


def test_duplicate_ids_last_wins_and_are_counted(tmp_path, caplog):
    p = tmp_path / "catalog.jsonl"
    first = {"id": "7", "title": "Old title"}
    last = {"id": "7", "title": "New title"}
    write_lines(p, [json.dumps(first), json.dumps(GOOD[0]), json.dumps(last), json.dumps(last)])
    with caplog.at_level(logging.WARNING):
        items = read_catalog_jsonl(p)
    assert [(i.id, i.title) for i in items] == [("7", "New title"), ("2571", "Matrix, The (1999)")]
    assert items.duplicates == 2
    assert "2 duplicate item ids" in caplog.text


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(InvalidInputError, match="cannot read"):
        read_catalog_jsonl(tmp_path / "nope.jsonl")


def test_read_jsonl_is_generic(tmp_path):
    p = tmp_path / "texts.jsonl"
    write_lines(p, [json.dumps({"text": "I love jazz", "source": "post"}), json.dumps({"source": "tag"})])
    with pytest.raises(InvalidInputError, match=r"texts\.jsonl:2: text: Field required"):
        read_jsonl(p, SourceText)
    write_lines(p, [json.dumps({"text": "I love jazz", "source": "post"})])
    assert read_jsonl(p, SourceText)[0].text == "I love jazz"


def test_read_interactions(tmp_path):
    p = tmp_path / "interactions.jsonl"
    write_lines(
        p,
        [
            json.dumps({"user_id": "1", "item_id": "3", "value": 4.0, "ts": "2000-07-30T18:20:47Z"}),
            json.dumps({"user_id": "1", "item_id": "5"}),
        ],
    )
    rows = read_interactions_jsonl(p)
    assert rows[0] == Interaction(user_id="1", item_id="3", value=4.0, ts="2000-07-30T18:20:47Z")
    assert rows[1].value == 1.0 and rows[1].ts is None
    write_lines(p, [json.dumps({"user_id": "1", "item_id": "3", "value": "lots"})])
    with pytest.raises(InvalidInputError, match=r"interactions\.jsonl:1: value"):
        read_interactions_jsonl(p)


def test_reads_the_shared_redial_catalog(shared_datasets):
    path = shared_datasets / "redial" / "catalog.jsonl"
    items = read_catalog_jsonl(path)
    n_lines = sum(1 for line in path.open(encoding="utf-8") if line.strip())
    assert len(items) + items.duplicates == n_lines
    assert len(items) > 5000 and len({i.id for i in items}) == len(items)
    assert all(i.text.strip() for i in items)
