"""interestlens.stores: ChromaStore (chroma_store), interactions and behavioural signals (behaviour),
JSON-lines readers (catalog_io) and id validation (ids). Import the modules directly; nothing is imported here
so that `import interestlens.stores` stays cheap."""
