"""Synthetic examples: generation, filters, reports."""
