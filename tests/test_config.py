"""Settings: one nested group per component and stage, with the flat names of earlier releases routed into them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from interestlens.agent.config import Settings, flat_names


def test_groups_and_flat_names_mean_the_same_setting():
    nested = Settings(decompose={"chunk_chars": 800}, llm_stages={"rerank": True}, llm="none")
    flat = Settings(chunk_chars=800, rerank=True, llm="none")
    assert nested.model_dump() == flat.model_dump()
    assert flat.decompose.chunk_chars == 800 and flat.chunk_chars == 800  # the flat read is the group's field
    assert flat.decompose.max_text_chars == Settings().decompose.max_text_chars  # other fields keep defaults


def test_model_copy_routes_validates_and_replaces_dict_values():
    s = Settings(llm="none")
    c = s.model_copy(update={"fusion_weights": {"text": 1.0}, "max_intents": 1, "use_llm_compose": False})
    assert c.fusion.weights == {"text": 1.0}  # a dict-valued knob is replaced, not merged with the defaults
    assert c.compose.max_intents == 1 and c.llm_stages.compose is False
    assert s.compose.max_intents == Settings().compose.max_intents  # the original is untouched
    with pytest.raises(ValidationError):
        s.model_copy(update={"mmr_lambda": "not a number"})
    with pytest.raises(ValidationError):  # top-level fields are validated too
        s.model_copy(update={"seed": "not a number"})
    with pytest.raises(ValidationError):  # a typo inside a group is an error, not a silently ignored knob
        Settings(retrieve={"mmr_lamda": 0.5})


def test_environment_nested_and_flat_names(monkeypatch):
    monkeypatch.setenv("INTERESTLENS_RETRIEVE__MMR_LAMBDA", "0.25")
    monkeypatch.setenv("INTERESTLENS_N_GPU_LAYERS", "-1")  # the documented flat name
    monkeypatch.setenv("INTERESTLENS_FUSION_WEIGHTS", '{"text": 2.0}')
    monkeypatch.setenv("INTERESTLENS_LLM", "none")
    s = Settings()
    assert s.retrieve.mmr_lambda == 0.25 and s.llamacpp.n_gpu_layers == -1
    assert s.fusion.weights == {"text": 2.0} and s.llm == "none"
    assert Settings(n_gpu_layers=0).llamacpp.n_gpu_layers == 0  # arguments win over the environment
    copy = Settings(mmr_lambda=0.9).model_copy(update={"seed": 3})
    assert copy.retrieve.mmr_lambda == 0.9 and copy.seed == 3  # a copy keeps its values, not the environment's


def test_every_flat_name_reaches_a_field_and_dumps_are_plain_json():
    s = Settings()
    for name in flat_names():
        getattr(s, name)  # raises AttributeError for a name that routes nowhere
    dumped = s.model_dump(mode="json")
    assert {"decompose", "profile", "compose", "retrieve", "fusion", "reranker", "llm_stages"} <= set(dumped)
    assert Settings(**{k: v for k, v in dumped.items()}).model_dump(mode="json") == dumped
    with pytest.raises(AttributeError):
        _ = s.no_such_setting


def test_recorded_settings_mask_the_api_key_but_copies_keep_it(tmp_path):
    import json

    from bench.common import BenchResult, write_result

    s = Settings(llm="none", openai={"api_key": "sk-secret-value"})
    assert s.model_dump(mode="json")["openai"]["api_key"] == "***"
    assert "sk-secret-value" not in s.model_dump_json()
    assert s.model_copy(update={"seed": 3}).openai.api_key == "sk-secret-value"  # the client still gets the key
    assert Settings(llm="none").model_dump(mode="json")["openai"]["api_key"] is None

    res = BenchResult(bench="probe")
    res.settings = s.model_dump(mode="json")
    written = json.loads(write_result(res, tmp_path).read_text())
    assert written["commit"] and written["settings"]["llm"] == "none"
    assert "sk-secret-value" not in json.dumps(written)
