"""mmrag.prompts: prompt templates as files, loaded with importlib.resources."""
