"""Id validation shared by the store and everything writing to it (user ids are Chroma metadata values)."""

from __future__ import annotations

import re
import unicodedata

from interestlens.agent.errors import InvalidInputError

USER_ID_PATTERN = r"^[A-Za-z0-9_.@:-]{1,128}$"  # also the JSON-schema pattern of every tool's user_id
_USER_ID = re.compile(USER_ID_PATTERN)
MAX_ITEM_ID_CHARS = 256


def validate_user_id(user_id: object) -> str:
    """Return `user_id` if it is 1..128 chars of [A-Za-z0-9_.@:-]; else raise InvalidInputError."""
    if not isinstance(user_id, str) or not _USER_ID.fullmatch(user_id):
        shown = repr(user_id)[:60]
        raise InvalidInputError(
            f"invalid user id {shown}: use 1-128 characters of letters, digits and _ . @ : -"
        )
    return user_id


def validate_item_id(item_id: object) -> str:
    """Item ids are any non-blank string up to 256 chars (catalogs bring their own ids) with no control or
    format characters: ids are shown to people and models, and a newline in one forges a line of output."""
    if (
        not isinstance(item_id, str)
        or not item_id.strip()
        or len(item_id) > MAX_ITEM_ID_CHARS
        or any(unicodedata.category(ch)[0] == "C" for ch in item_id)
    ):
        shown = repr(item_id)[:60]
        raise InvalidInputError(
            f"invalid item id {shown}: use a non-blank string of at most 256 characters without control characters"
        )
    return item_id
