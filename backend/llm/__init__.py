"""The LLM: where its weights come from, the prompt, the two scoring engines, calibration, pre-annotation."""
