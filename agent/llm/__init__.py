"""LLM backends behind the StructuredLLM protocol."""
