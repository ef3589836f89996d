"""Measuring: the corpus, evaluation, simulations, engine, load and re-score benchmarks."""
