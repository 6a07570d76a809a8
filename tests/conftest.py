"""Session-wide real parts, loaded once: the packaged GGUF model, MiniLM, a llama.cpp OpenAI server, a Chroma server.

Nothing here is a mock: each fixture starts or loads the real component. Servers bind to 127.0.0.1 on a free port.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


@pytest.fixture(scope="session")
def settings():
    from interestlens.agent.config import Settings

    return Settings(store="unused-by-default", n_ctx=2048)


@pytest.fixture(scope="session")
def embedder():
    from interestlens.agent.embeddings import make_embedder

    return make_embedder("minilm")


@pytest.fixture(scope="session")
def tiny_llm(settings):
    """The packaged SmolLM2-135M-Instruct through llama-cpp-python (one instance for the whole run)."""
    from interestlens.agent.llm import make_llm

    return make_llm("smollm2", settings)


@pytest.fixture(scope="session")
def gguf_path() -> str:
    from interestlens.agent.llm import default_gguf_path

    return str(default_gguf_path())


@pytest.fixture(scope="session")
def llama_server(gguf_path) -> Iterator[str]:
    """A real `python -m llama_cpp.server` on 127.0.0.1; yields its OpenAI base URL (http://127.0.0.1:N/v1)."""
    from _llama_server import running_llama_server

    with running_llama_server(gguf_path) as base_url:
        yield base_url


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory) -> Iterator[str]:
    """A real `chroma run` server on 127.0.0.1; yields http://127.0.0.1:N."""
    from _chroma_server import running_chroma_server

    with running_chroma_server(tmp_path_factory.mktemp("chroma-server")) as url:
        yield url


@pytest.fixture
def store(tmp_path, embedder):
    """A fresh embedded (PersistentClient) store in a temporary directory."""
    from interestlens.stores.chroma_store import ChromaStore

    s = ChromaStore(str(tmp_path / "store"), embedder)
    yield s
    s.close()


@pytest.fixture(scope="session")
def demo_items():
    from importlib import resources

    from interestlens.stores.catalog_io import read_catalog_jsonl

    path = resources.files("interestlens.agent").joinpath("data/demo_catalog.jsonl")
    with resources.as_file(path) as p:
        return read_catalog_jsonl(p)


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    if not (SHARED_DATASETS / "README.md").exists():
        pytest.skip("../shared/datasets is not present beside this checkout")
    return SHARED_DATASETS
