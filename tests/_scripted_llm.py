"""A scripted `StructuredLLM` for branch logic the packaged model cannot reach deterministically.

Each entry of the script is the raw text the "model" writes; it goes through the same `validate_reply` as every
backend, so an invalid entry raises what a real invalid reply raises. Real-model tests stay beside these.
"""

from __future__ import annotations

from interestlens.agent.llm.base import LLMUsage, StructuredResponse, validate_reply
from interestlens.agent.prompting import RenderedPrompt


class ScriptedLLM:
    model_id = "scripted"

    def __init__(self, replies: list[str], prompt_tokens: int = 100, completion_tokens: int = 7) -> None:
        self.replies = list(replies)
        self.prompts: list[RenderedPrompt] = []
        self.usage = (prompt_tokens, completion_tokens)

    def generate(self, prompt, response_model, *, max_tokens=512, temperature=0.0):
        self.prompts.append(prompt)
        usage = LLMUsage(prompt_tokens=self.usage[0], completion_tokens=self.usage[1])
        raw = self.replies.pop(0)
        return StructuredResponse(value=validate_reply(raw, response_model, self.model_id, usage), usage=usage)
