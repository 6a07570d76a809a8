"""A client for `interestlens serve`: the CLI's `--server URL` runs each verb there instead of loading models.

Arguments are validated here with the registry's own model first (the same message as a local call, and no
round trip for a typo); the service's JSON errors come back as the same exception types the local agent
raises, so the CLI maps them to the same exit codes.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel, ValidationError

from interestlens.agent.errors import InterestLensError, InvalidInputError, LLMError, StoreError, UnknownIdError
from interestlens.tools.specs import TOOLS_BY_NAME

_ERRORS: dict[str, type[InterestLensError]] = {
    c.__name__: c for c in (InvalidInputError, UnknownIdError, StoreError, LLMError)
}
TIMEOUT_S = 600.0  # an LLM stage on a CPU server can take minutes; the service, not the client, bounds the work


def call_server(url: str, verb: str, args: dict[str, Any], *, token: str | None = None) -> BaseModel:
    """POST /v1/<verb> on the service at `url` and return the verb's result model."""
    spec = TOOLS_BY_NAME[verb]
    payload = spec.parse_args(args).model_dump(mode="json", exclude_unset=True)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    endpoint = f"{url.rstrip('/')}/v1/{verb}"
    try:
        response = httpx.post(endpoint, json=payload, headers=headers, timeout=TIMEOUT_S)
    except httpx.HTTPError as e:
        raise StoreError(f"cannot reach the interestlens service at {url}: {type(e).__name__}: {e}") from e
    if response.status_code == 401:
        raise InvalidInputError(f"{url} needs a bearer token: pass --token or set INTERESTLENS_TOKEN")
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200:
        error = body.get("error") if isinstance(body, dict) else None
        kind = _ERRORS.get(body.get("type", "") if isinstance(body, dict) else "", StoreError)
        raise kind(error or f"{endpoint} answered HTTP {response.status_code}")
    try:
        return spec.result_model.model_validate(body)
    except ValidationError as e:
        raise StoreError(f"{endpoint} sent a result that is not a {spec.result_model.__name__}: {e}") from e
