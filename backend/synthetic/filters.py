"""Quality filters for synthetic candidates; every rejected item keeps the reason and the evidence.

Checks, cheapest first; a candidate stops at the first one it fails, so `reason` names that one:

1. format: empty, cut off at the token budget, an echo of the prompt's own instructions (4 words in a row),
   chat leftovers ("Here is the paraphrase", "As an AI"), Markdown, a label tag ("Positive:"), letters outside
   the Latin script (Qwen drifts into Chinese), or another language than the real texts' (langid.py, >= 8 words);
2. length: fewer than min_words or more than max_words words;
3. duplicate of a real text (the real pool, the gold set and the guidelines' examples): the same text after
   normalisation (exact), ROUGE-L F1 >= rouge_threshold (near, as in Self-Instruct, with Google's rouge-score),
   or sentence-embedding cosine >= cosine_threshold (the same content in other words);
4. label: the LLM's calibrated probability of the intended label below llm_threshold, or, when a classifier was
   trained on the real labels, its probability below that label's threshold; two different views must both agree.
   A classifier trained on a hundred labels is unsure even of real texts (on the test split, one trained on 150
   corpus texts gives the true label >= 0.5 to only 59% of them), so its thresholds come from the real data: the
   `classifier_quantile` quantile of the cross-validated probability it gives real texts of the same label. A
   synthetic text must look as much like its label as 90% of the real ones do; a better classifier asks for more;
5. duplicate of a synthetic candidate accepted before it (same three tests), so the set holds no near copies.

ROUGE-L is computed only where it can reach the threshold: the LCS of two texts is at most the overlap of their
token multisets, so F1 <= 2 * overlap / (m + n), a bound that is cheap and exact and skips nearly every pair.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from rouge_score import rouge_scorer, tokenizers

from backend.quality import gold as golds

REASONS = (
    "format",
    "length",
    "duplicate-exact",
    "duplicate-rouge",
    "duplicate-embedding",
    "label-llm",
    "label-classifier",
)

# Phrases of a chat answer, not of a review; kept narrow (no Rotten Tomatoes text has one), since "I cannot recommend
# it", "Here is a film that...", "To paraphrase a line..." or "Sure, I hated myself" are fine review sentences.
_LEFTOVERS = re.compile(
    r"\bhere(?: is|'s| are)\b[^.!?]{0,40}\b(?:paraphras\w*|rewrit\w*|version|text)\b|\bas an ai\b|"
    r"\blanguage model\b|\bi'm sorry, but\b|\bparaphrased (?:version|text|review)\b|^sure[,!.]\s*here\b",
    re.I,
)
LANGUAGE_MIN_WORDS = 8
ECHO_NGRAM = 4  # words in a row shared with the prompt's wording that make an echo (1 corpus text in 13,835 has one)
# Code fences, headings, list items, bold: chat formatting. Not "1973. The..." (a year) or "****" (a censored word).
_MARKUP = re.compile(r"```|^\s*(?:#{1,6}\s|[-*•]\s|\d{1,2}[.)]\s)|\*\*\w[^*\n]*\w\*\*", re.M)


@dataclass(frozen=True)
class FilterConfig:
    rouge_threshold: float = 0.7
    cosine_threshold: float = 0.9
    llm_threshold: float = 0.5
    classifier_quantile: float = 0.1
    min_words: int = 4
    max_words: int = 300
    language: str | None = "en"  # the real texts' language; None skips the check

    def check(self) -> None:
        for name in ("rouge_threshold", "cosine_threshold", "llm_threshold", "classifier_quantile"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name.replace('_', ' ')} must be between 0 and 1, got {getattr(self, name)}")
        if not 1 <= self.min_words <= self.max_words:
            raise ValueError(f"need 1 <= min words <= max words, got {self.min_words} and {self.max_words}")


_tokenizer = tokenizers.DefaultTokenizer(use_stemmer=False)
_rouge = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
_language = None


def tokens(text: str) -> list[str]:
    """rouge-score's tokens (lower case, letters and digits), shared by the ROUGE filter and the diversity report."""
    return _tokenizer.tokenize(text)


def language(text: str) -> tuple[str, float]:
    """(ISO 639-1 code, probability) from langid.py's model, loaded on first use."""
    global _language
    if _language is None:
        from langid.langid import LanguageIdentifier, model

        _language = LanguageIdentifier.from_modelstring(model, norm_probs=True)
    code, p = _language.classify(text)
    return code, float(p)


def main_language(texts: Sequence[str]) -> str | None:
    """The language most real texts are in (they set what a synthetic text may be written in), None if no texts."""
    counts = Counter(language(t)[0] for t in texts)
    return counts.most_common(1)[0][0] if counts else None


def instructions(prompt: Sequence[dict] | None) -> str:
    """The words of a generation prompt that are ours, not the real examples': system and user turns, minus the
    real text a paraphrase or rewrite quotes after "Text:"."""
    parts = []
    for turn in prompt or []:
        if isinstance(turn, dict) and turn.get("role") in ("system", "user"):
            parts.append(str(turn.get("content", "")).split("\n\nText:", 1)[0])
    return "\n".join(parts)


def _ngrams(toks: list[str], n: int) -> set[tuple[str, ...]]:
    return set(zip(*(toks[i:] for i in range(n))))


def format_problem(
    text: str,
    finished: bool,
    labels: Sequence[str],
    prompt: Sequence[dict] | None = None,
    expected_language: str | None = None,
) -> str | None:
    """Why the text is not a usable example as written, or None."""
    if not text.strip():
        return "empty after cleaning"
    if not finished:
        return "cut off at the token budget"
    echoed = _ngrams(tokens(text), ECHO_NGRAM) & _ngrams(tokens(instructions(prompt)), ECHO_NGRAM)
    if echoed:
        return f"repeats the prompt's instructions ({' '.join(sorted(echoed)[0])!r})"
    if _MARKUP.search(text):
        return "Markdown or code markup"
    found = _LEFTOVERS.search(text)
    if found:
        return f"chat leftover {found.group(0)!r}"
    names = "|".join(map(re.escape, labels))
    tag = re.search(rf"\b(?:{names})\s*:|\((?:{names})\)", text) or re.search(r"\b(?:label|sentiment)\s*:", text, re.I)
    if tag:
        return f"a label tag {tag.group(0)!r}"
    # Not one of the 13,835 corpus texts has a letter outside the Latin script; Qwen slips in Chinese mid-sentence.
    foreign = [c for c in text if c.isalpha() and not unicodedata.name(c, "").startswith("LATIN")]
    if foreign:
        return f"{len(foreign)} letters outside the Latin script ({''.join(foreign[:5])!r})"
    # A paraphrase that drifts into Spanish is not what was asked for. Short texts are left alone: langid calls
    # "A quiet, disquieting triumph." Spanish.
    if expected_language and len(text.split()) >= LANGUAGE_MIN_WORDS:
        code, p = language(text)
        if code != expected_language and p >= 0.999:
            return f"written in {code!r} (langid p={p:.2f}), the real texts in {expected_language!r}"
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

    def duplicate(self, text: str, vector: np.ndarray, config: FilterConfig) -> tuple[str | None, str | None, dict]:
        """(reason, detail, scores): reason and detail None unless `text` repeats a pool text; scores hold the
        highest ROUGE-L and cosine found."""
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
        return None, None, scores


@dataclass
class RealClassifier:
    """A classifier trained on the real labels, and the probability each label's candidates must reach."""

    probs: Callable[[list[str]], np.ndarray]
    thresholds: dict[str, float]


def run_filters(
    candidates: Sequence[dict],
    reference: Sequence[tuple[str, str]],
    labels: Sequence[str],
    embed: Callable[[list[str]], np.ndarray],
    *,
    llm_probs: Callable[[list[str]], np.ndarray] | None = None,
    classifier: RealClassifier | None = None,
    config: FilterConfig = FilterConfig(),
    progress: Callable[[str], None] | None = None,
) -> list[dict]:
    """Each candidate with a `filter` object: status (accepted/rejected), reason, detail, scores.

    `reference` is (name, text) of the real texts to keep apart from; `embed` gives unit vectors; `llm_probs` and
    `classifier.probs` give (n, len(labels)) probabilities; a check without one is skipped.
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
        problem = format_problem(
            item["text"],
            bool(item.get("finished", True)),
            labels,
            item.get("provenance", {}).get("prompt"),
            config.language,
        )
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
        reason, detail, scores = real_pool.duplicate(item["text"], vectors[item["id"]], config)
        item["filter"]["scores"].update(scores)
        if reason:
            reject(item, reason, detail)
    live = [item for item in live if item["filter"]["status"] is None]

    checks = [("label-llm", llm_probs, dict.fromkeys(labels, config.llm_threshold), "llm")]
    if classifier is not None:
        checks.append(("label-classifier", classifier.probs, classifier.thresholds, "classifier"))
    for name, scorer, thresholds, key in checks:
        if scorer is None or not live:
            continue
        say(f"checking labels with the {key}")
        probs = np.asarray(scorer([item["text"] for item in live]))
        for item, row in zip(live, probs):
            label = item["intended_label"]
            p, threshold = float(row[list(labels).index(label)]), thresholds[label]
            item["filter"]["scores"][f"{key}_p_intended"] = round(p, 4)
            item["filter"]["scores"][f"{key}_probs"] = [round(float(x), 4) for x in row]
            if p < threshold:
                top = labels[int(np.argmax(row))]
                reject(item, name, f"{key} gives {label} {p:.2f} < {threshold:.2f} (its choice: {top})")
        live = [item for item in live if item["filter"]["status"] is None]

    accepted = _Pool()
    for item in live:
        reason, detail, _ = accepted.duplicate(item["text"], vectors[item["id"]], config)
        if reason:
            reject(item, reason, detail)
            continue
        item["filter"]["status"] = "accepted"
        accepted.add(f"accepted candidate {item['id']}", item["text"], vectors[item["id"]])
    return out


def reference_texts(real: Sequence[str], include_gold: bool = True, guidelines: Any = None) -> list[tuple[str, str]]:
    """Named texts no synthetic item may repeat: the real ones, the gold set and the guidelines' examples."""
    from backend.synthetic.generate import text_id

    named = [(f"real text {text_id(t)}", t) for t in real]
    if include_gold:
        named += [(f"gold item line {g.line}", g.text) for g in golds.default_gold()]
    if guidelines is not None:
        named += [(f"guidelines example {i}", t) for i, (t, _) in enumerate(guidelines.examples, 1)]
    return named


# ---------------------------------------------------------------- model-backed checks


def cached_llm_probs(predictor: Any, schema: Any, cache_dir: str | Path | None) -> Callable[[list[str]], np.ndarray]:
    """The predictor's calibrated label probabilities, its feature log-probabilities cached on disk per text, keyed
    by model, prompt and calibration features (a text is scored once however many times filters and reports ask)."""
    from backend.learning.vectors import VectorCache
    from backend.llm.predictor import SCORER_VERSION

    setup = predictor.setup(schema)
    features = tuple(setup.calibration.features)
    key = hashlib.sha256(
        "\x1f".join((SCORER_VERSION, predictor.source.identity, setup.prompt.sha256, *features)).encode()
    ).hexdigest()[:16]
    cache = VectorCache(Path(cache_dir) / f"llm-features-{key}.npz" if cache_dir else None)

    def score(batch: list[str]) -> np.ndarray:
        from tqdm.auto import tqdm

        chunks = range(0, len(batch), 64)  # chunks only for the progress bar; the scorer packs each one itself
        parts = [
            predictor.feature_logprobs(setup, batch[i : i + 64])
            for i in tqdm(chunks, desc="LLM scores", unit="chunk", disable=len(chunks) < 2)
        ]
        return np.concatenate(parts)

    def probs(texts: list[str]) -> np.ndarray:
        logprobs = cache.get(list(texts), score)
        cache.save()
        return setup.calibration.apply(logprobs)

    return probs


def real_classifier(
    real_texts: Sequence[str],
    real_labels: Sequence[str],
    labels: Sequence[str],
    embed: Callable[[list[str]], np.ndarray],
    quantile: float = 0.1,
) -> RealClassifier | None:
    """A "classifier" (embeddings only) fitted on the real labels, with per-label thresholds: the `quantile` of the
    cross-validated probability it gives real texts of that label. None when the labels are too few to fit one
    (backend.learning.classifier.MIN_LABELS in two classes)."""
    from backend.learning import classifier

    y = np.array([list(labels).index(label) for label in real_labels])
    x = embed(list(real_texts))
    try:
        model = classifier.fit("classifier", x, None, y, len(labels))
        held_out = classifier.out_of_fold("classifier", x, None, y, len(labels))
    except classifier.TrainingError:
        return None
    truth = held_out[np.arange(len(y)), y]
    thresholds = {
        label: round(float(np.quantile(truth[y == k], quantile)), 4) if (y == k).any() else 1.0
        for k, label in enumerate(labels)
    }
    return RealClassifier(lambda texts: model.predict_proba(embed(list(texts))), thresholds)
