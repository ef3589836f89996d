#!/usr/bin/env python3
"""Treat the LLM as one more annotator: Cohen's κ against each human and the majority, per prompt variant.

The command lives in backend/cli/llm_vs_human.py and is installed as `labelloop-llm-vs-human`; this file runs it from a checkout.
"""

import sys

from backend.cli.llm_vs_human import main

if __name__ == "__main__":
    sys.exit(main())
