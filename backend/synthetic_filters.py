"""Quality filters for synthetic candidates; every rejected item keeps the reason and the evidence.

Checks, cheapest first; a candidate stops at the first one it fails, so `reason` names that one:

1. format: empty, cut off at the token budget, chat leftovers ("Here is...", "As an AI"), Markdown or code,
   a label name written into the text, other scripts than Latin (the Qwen models drift into Chinese);
2. length: fewer than min_words or more than max_words words;
3. duplicate of a real text (the real pool, the gold set and the guidelines' examples): the same text after
   normalisation (exact), ROUGE-L F1 >= rouge_threshold (near, as in Self-Instruct, with Google's rouge-score),
   or sentence-embedding cosine >= cosine_threshold (the same content in other words);
4. label: the LLM's calibrated probability of the intended label below llm_threshold, or, when a classifier was
   trained on the real labels, its probability below classifier_threshold; two different views must both agree;
5. duplicate of a synthetic candidate accepted before it (same three tests), so the set holds no near copies.

ROUGE-L is computed only where it can reach the threshold: the LCS of two texts is at most the overlap of their
token multisets, so F1 <= 2 * overlap / (m + n), a bound that is cheap and exact and skips nearly every pair.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from rouge_score import rouge_scorer, tokenizers

from backend import gold as golds

REASONS = (
    "format", "length", "duplicate-exact", "duplicate-rouge", "duplicate-embedding", "label-llm", "label-classifier",
)

# Phrases of a chat answer, not of a review; kept narrow, since "I cannot recommend it" or "Here is a film that..."
# are fine review sentences.
_LEFTOVERS = re.compile(
    r"\bhere(?: is|'s| are)\b[^.!?]{0,40}\b(?:paraphras\w*|rewrit\w*|version|text)\b|\bas an ai\b|"
    r"\blanguage model\b|\bi'm sorry, but\b|\bparaphras\w*|\boriginal text\b|\bthe text above\b|\bnote:|"
    r"^sure[,!.]\s*(?:here|i\b)",
    re.I,
)
_MARKUP = re.compile(r"```|^\s*(?:#{1,6}\s|[-*•]\s|\d+[.)]\s)|\*\*", re.M)


@dataclass(frozen=True)
class FilterConfig:
    rouge_threshold: float = 0.7
    cosine_threshold: float = 0.9
    llm_threshold: float = 0.5
    classifier_threshold: float = 0.5
    min_words: int = 4
    max_words: int = 300


_tokenizer = tokenizers.DefaultTokenizer(use_stemmer=False)
_rouge = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def tokens(text: str) -> list[str]:
    """rouge-score's tokens (lower case, letters and digits), shared by the ROUGE filter and the diversity report."""
    return _tokenizer.tokenize(text)


def format_problem(text: str, finished: bool, labels: Sequence[str]) -> str | None:
    """Why the text is not a usable example as written, or None."""
    if not text.strip():
        return "empty after cleaning"
    if not finished:
        return "cut off at the token budget"
    if _MARKUP.search(text):
        return "Markdown or code markup"
    found = _LEFTOVERS.search(text)
    if found:
        return f"chat leftover {found.group(0)!r}"
    if "\n\n" in text.strip():
        return "several paragraphs"
    names = "|".join(map(re.escape, labels))
    tag = re.search(rf"\b(?:{names})\s*:|\((?:{names})\)", text) or re.search(r"\b(?:label|sentiment)\s*:", text, re.I)
    if tag:
        return f"a label tag {tag.group(0)!r}"
    letters = [c for c in text if c.isalpha()]
    foreign = sum(1 for c in letters if not unicodedata.name(c, "").startswith("LATIN"))
    if letters and foreign / len(letters) > 0.05:
        return f"{foreign} letters outside the Latin script"
    return None


class _Pool:
    """Texts to compare against: normalised form, rouge tokens and unit embeddings, with a name for each."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.keys: dict[str, str] = {}
        self.tokens: list[list[str]] = []
        self.counts: list[Counter] = []
        self.texts: list[str] = []
        self.vectors: list[np.ndarray] = []

    def add(self, name: str, text: str, vector: np.ndarray) -> None:
        self.keys.setdefault(golds.normalise(text), name)
        toks = tokens(text)
        self.names.append(name)
        self.texts.append(text)
        self.tokens.append(toks)
        self.counts.append(Counter(toks))
        self.vectors.append(np.asarray(vector, dtype=np.float32))

    def duplicate(self, text: str, vector: np.ndarray, config: FilterConfig) -> tuple[str, str, dict] | None:
        """(reason, detail, scores) if `text` repeats a pool text, else None; scores hold the maxima found."""
        name = self.keys.get(golds.normalise(text))
        if name is not None:
            return "duplicate-exact", f"the same text as {name}", {"rouge_l_max": 1.0, "cosine_max": 1.0}
        scores: dict[str, Any] = {"rouge_l_max": 0.0, "cosine_max": 0.0}
        if self.vectors:
            cosines = np.stack(self.vectors) @ np.asarray(vector, dtype=np.float32)
            best = int(cosines.argmax())
            scores["cosine_max"] = round(float(cosines[best]), 4)
        mine = tokens(text)
        counts, m = Counter(mine), len(mine)
        for i, other in enumerate(self.tokens):
            n = len(other)
            if not m or not n:
                continue
            bound = 2 * sum((counts & self.counts[i]).values()) / (m + n)
            if bound < max(config.rouge_threshold, scores["rouge_l_max"]):
                continue
            f = _rouge.score(self.texts[i], text)["rougeL"].fmeasure
            if f > scores["rouge_l_max"]:
                scores["rouge_l_max"], scores["rouge_l_with"] = round(f, 4), self.names[i]
        if scores["rouge_l_max"] >= config.rouge_threshold:
            return "duplicate-rouge", f"ROUGE-L {scores['rouge_l_max']:.2f} with {scores['rouge_l_with']}", scores
        if scores["cosine_max"] >= config.cosine_threshold:
            return "duplicate-embedding", f"cosine {scores['cosine_max']:.3f} with {self.names[best]}", scores
        return None


def run_filters(
    candidates: Sequence[dict],
    reference: Sequence[tuple[str, str]],
    labels: Sequence[str],
    embed: Callable[[list[str]], np.ndarray],
    llm_probs: Callable[[list[str]], np.ndarray] | None = None,
    classifier_probs: Callable[[list[str]], np.ndarray] | None = None,
    config: FilterConfig = FilterConfig(),
    progress: Callable[[str], None] | None = None,
) -> list[dict]:
    """Each candidate with a `filter` object: status (accepted/rejected), reason, detail, scores.

    `reference` is (name, text) of the real texts to keep apart from; `embed` gives unit vectors; `llm_probs` and
    `classifier_probs` give (n, len(labels)) probabilities, and a check whose function is None is skipped.
    """
    say = progress or (lambda _: None)
    out = [{**c, "filter": {"status": None, "reason": None, "detail": None, "scores": {}}} for c in candidates]

    def reject(item: dict, reason: str, detail: str) -> None:
        item["filter"].update(status="rejected", reason=reason, detail=detail)

    for item in out:
        label = item.get("intended_label")
        if label not in labels:
            reject(item, "format", f"intended label {label!r} is not one of {', '.join(labels)}")
            continue
        problem = format_problem(item["text"], bool(item.get("finished", True)), labels)
        if problem:
            reject(item, "format", problem)
            continue
        words = len(item["text"].split())
        if words < config.min_words or words > config.max_words:
            reject(item, "length", f"{words} words, outside {config.min_words}-{config.max_words}")
    live = [item for item in out if item["filter"]["status"] is None]

    say(f"embedding {len(reference)} real and {len(live)} synthetic texts")
    ref_vectors = embed([text for _, text in reference]) if reference else np.zeros((0, 1))
    vectors = dict(zip((item["id"] for item in live), embed([item["text"] for item in live]))) if live else {}
    real_pool = _Pool()
    for (name, text), vector in zip(reference, ref_vectors):
        real_pool.add(name, text, vector)
    say("comparing with the real texts")
    for item in live:
        found = real_pool.duplicate(item["text"], vectors[item["id"]], config)
        if found:
            reject(item, found[0], found[1])
        item["filter"]["scores"].update(found[2] if found else {})
    live = [item for item in live if item["filter"]["status"] is None]

    for name, scorer, threshold, key in (
        ("label-llm", llm_probs, config.llm_threshold, "llm"),
        ("label-classifier", classifier_probs, config.classifier_threshold, "classifier"),
    ):
        if scorer is None or not live:
            continue
        say(f"checking labels with the {key}")
        probs = np.asarray(scorer([item["text"] for item in live]))
        for item, row in zip(live, probs):
            p = float(row[list(labels).index(item["intended_label"])])
            item["filter"]["scores"][f"{key}_p_intended"] = round(p, 4)
            item["filter"]["scores"][f"{key}_probs"] = [round(float(x), 4) for x in row]
            if p < threshold:
                top = labels[int(np.argmax(row))]
                reject(item, name, f"{key} gives {item['intended_label']} {p:.2f} < {threshold} (its choice: {top})")
        live = [item for item in live if item["filter"]["status"] is None]

    accepted = _Pool()
    for item in live:
        found = accepted.duplicate(item["text"], vectors[item["id"]], config)
        if found:
            reject(item, found[0], found[1])
            continue
        item["filter"]["status"] = "accepted"
        accepted.add(f"accepted candidate {item['id']}", item["text"], vectors[item["id"]])
    return out


def reference_texts(real: Sequence[str], include_gold: bool = True, guidelines: Any = None) -> list[tuple[str, str]]:
    """Named texts no synthetic item may repeat: the real ones, the gold set and the guidelines' examples."""
    named = [(f"real text {text_hash(t)}", t) for t in real]
    if include_gold:
        named += [(f"gold item line {g.line}", g.text) for g in golds.default_gold()]
    if guidelines is not None:
        named += [(f"guidelines example {i}", t) for i, (t, _) in enumerate(guidelines.examples, 1)]
    return named


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def config_dict(config: FilterConfig) -> dict:
    return asdict(config)


# ---------------------------------------------------------------- model-backed checks


def cached_llm_probs(predictor: Any, schema: Any, cache_dir: str | Path | None) -> Callable[[list[str]], np.ndarray]:
    """The predictor's calibrated label probabilities, its feature log-probabilities cached on disk per text, keyed
    by model, prompt and calibration features (a text is scored once however many times filters and reports ask)."""
    from backend.predictor import SCORER_VERSION
    from backend.vectors import VectorCache

    setup = predictor.setup(schema)
    features = tuple(setup.calibration.features)
    key = hashlib.sha256(
        "\x1f".join((SCORER_VERSION, predictor.source.identity, setup.prompt.sha256, *features)).encode()
    ).hexdigest()[:16]
    cache = VectorCache(Path(cache_dir) / f"llm-features-{key}.npz" if cache_dir else None)

    def probs(texts: list[str]) -> np.ndarray:
        logprobs = cache.get(list(texts), lambda batch: predictor.feature_logprobs(setup, batch))
        cache.save()
        return setup.calibration.apply(logprobs)

    return probs


def real_classifier(
    real_texts: Sequence[str], real_labels: Sequence[str], labels: Sequence[str], embed: Callable[[list[str]], np.ndarray]
) -> Callable[[list[str]], np.ndarray] | None:
    """A "classifier" (embeddings only) fitted on the real labels, as a probability function; None when the labels
    are too few to fit one (backend.classifier.MIN_LABELS in two classes)."""
    from backend import classifier

    y = [list(labels).index(label) for label in real_labels]
    try:
        model = classifier.fit("classifier", embed(list(real_texts)), None, y, len(labels))
    except classifier.TrainingError:
        return None
    return lambda texts: model.predict_proba(embed(list(texts)))
