"""Which task to label next: uncertainty, diversity, fusion and LLM-judged informativeness."""
