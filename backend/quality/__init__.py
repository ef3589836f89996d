"""Label quality: agreement, gold tasks, drift, the LLM against people, label issues."""
