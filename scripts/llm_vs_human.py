#!/usr/bin/env python3
"""Treat the LLM as one more annotator: Cohen's κ against each human and the majority, per prompt variant.

The command is `labelloop llm-vs-human` (backend/cli/llm_vs_human.py); this file runs it from a checkout
(as before, until the next release).
"""

import sys

from backend.cli.llm_vs_human import main

if __name__ == "__main__":
    sys.exit(main())
