"""The per-project loop: the trained model and its store, retraining jobs, vectors, finishing."""
