"""mmrag.pipeline: configuration, the command line and the orchestration of ingest, search and ask."""
