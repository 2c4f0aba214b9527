"""mmrag.retrieval: the index (one Chroma collection), embedders and ranking."""
