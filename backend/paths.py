"""Where the repository's own files are: the demo project's labeling config, guidelines and gold set."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GUIDELINES_DIR = ROOT / "guidelines"
DEMO_CONFIG = ROOT / "label_config" / "sentiment.xml"
DEMO_GUIDELINES = GUIDELINES_DIR / "sentiment.md"
DEMO_GOLD = GUIDELINES_DIR / "gold" / "sentiment.jsonl"
