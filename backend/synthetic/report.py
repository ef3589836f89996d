"""What synthetic examples are like and what they add: intrinsic and extrinsic reports, and review rates.

Intrinsic (no model): per set, tokens per example, distinct-1/2 (distinct n-grams over all n-grams) and unique
bigrams per example (distinct bigrams of the set over its size), the measures of the DataTune paper's diversity
table (Gandhi et al., 2024). Distinct-n falls as a set grows, so real and synthetic are compared at the same size:
the larger set is subsampled to the smaller one's size (mean over `draws` draws), overall and per label. Tokens are
rouge-score's (lower case, letters and digits), the same the ROUGE-L filter reads.

Extrinsic: the classifier (`backend.learning.classifier`, kinds "classifier" and/or "blend") trained on a small real sample
with and without the accepted synthetic examples, scored on the evaluation's fixed 600-item test split: macro-F1
and each label's F1, the rarest real label's on its own. The real sample given is run first; `resamples` more
corpus samples of the same size (seeds 1..K, disjoint from the test split) show how much of a difference is luck.

Review: from a Label Studio JSON export, each reviewed synthetic task is accepted (the annotators' label is the
intended one), edited (another label) or rejected (every annotation skipped/cancelled: not a usable example).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from backend.labelstudio.records import is_synthetic
from backend.learning import classifier
from backend.synthetic.filters import REASONS, tokens
from backend.synthetic.generate import SyntheticError, corpus_sample

# ---------------------------------------------------------------- intrinsic


def diversity(texts: Sequence[str]) -> dict[str, float]:
    """Tokens per example, distinct-1, distinct-2 and unique bigrams per example of a set of texts."""
    toks = [tokens(t) for t in texts]
    unigrams = [w for t in toks for w in t]
    bigrams = [b for t in toks for b in zip(t, t[1:])]
    n = len(texts)
    return {
        "n": n,
        "tokens_per_example": len(unigrams) / n if n else 0.0,
        "distinct_1": len(set(unigrams)) / len(unigrams) if unigrams else 0.0,
        "distinct_2": len(set(bigrams)) / len(bigrams) if bigrams else 0.0,
        "unique_bigrams_per_example": len(set(bigrams)) / n if n else 0.0,
    }


def matched_diversity(a: Sequence[str], b: Sequence[str], draws: int = 20, seed: int = 0) -> tuple[dict, dict]:
    """diversity() of both sets at the size of the smaller one, the larger one averaged over `draws` subsamples."""
    a, b = list(a), list(b)
    n = min(len(a), len(b))
    if n == 0:
        return diversity([]), diversity([])
    rng = np.random.default_rng(seed)

    def at_size(texts: list[str]) -> dict:
        if len(texts) == n:
            return diversity(texts)
        runs = [diversity([texts[i] for i in rng.choice(len(texts), n, replace=False)]) for _ in range(draws)]
        return {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}

    return at_size(a), at_size(b)


def intrinsic(real: pd.DataFrame, items: Sequence[dict], labels: Sequence[str], draws: int = 20) -> dict[str, Any]:
    """Diversity (real vs accepted synthetic, size-matched), label balance and rejections by reason and mode."""
    accepted = [i for i in items if i.get("filter", {}).get("status") == "accepted"]
    rows = []
    groups = [("all", real["text"].tolist(), [i["text"] for i in accepted])]
    groups += [
        (
            label,
            real.loc[real["label"] == label, "text"].tolist(),
            [i["text"] for i in accepted if i["intended_label"] == label],
        )
        for label in labels
    ]
    for name, real_texts, synthetic_texts in groups:
        r, s = matched_diversity(real_texts, synthetic_texts, draws)
        rows.append({"set": name, "real": r, "synthetic": s})
    reasons = Counter(i.get("filter", {}).get("reason") or "accepted" for i in items)
    by_mode: dict[str, dict] = {}
    for item in items:
        entry = by_mode.setdefault(item.get("mode", "?"), {"candidates": 0, "accepted": 0})
        entry["candidates"] += 1
        entry["accepted"] += item.get("filter", {}).get("status") == "accepted"
    return {
        "diversity": rows,
        "label_balance": {
            "real": {label: int((real["label"] == label).sum()) for label in labels},
            "candidates": {label: sum(i["intended_label"] == label for i in items) for label in labels},
            "accepted": {label: sum(i["intended_label"] == label for i in accepted) for label in labels},
        },
        "outcomes": {key: reasons.get(key, 0) for key in ("accepted", *REASONS)},
        "by_mode": by_mode,
        "models": sorted({str(i.get("provenance", {}).get("model")) for i in items}),
    }


# ---------------------------------------------------------------- extrinsic


def extrinsic(
    real: pd.DataFrame,
    accepted: Sequence[dict],
    labels: Sequence[str],
    embed: Callable[[list[str]], np.ndarray],
    llm_probs: Callable[[list[str]], np.ndarray] | None,
    *,
    kinds: Sequence[str] = ("classifier",),
    resamples: int = 2,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Macro-F1 and per-label F1 on the fixed test split, trained on real samples with and without `accepted`."""
    from backend.bench import evaluation  # imports torch through the predictor: only when needed

    say = progress or (lambda _: None)
    if "blend" in kinds and llm_probs is None:
        raise SyntheticError("the blend needs the LLM's probabilities")
    test = evaluation.splits()[0]
    test_texts = set(test["text"])
    leaked = int(real["text"].isin(test_texts).sum())
    if leaked:
        raise SyntheticError(f"{leaked} real training texts are in the evaluation's test split; train on other texts")
    synthetic = [(i["text"], i["intended_label"]) for i in accepted if i["text"] not in test_texts]
    index = {label: k for k, label in enumerate(labels)}
    counts = real["label"].value_counts()
    minority = min(labels, key=lambda label: (counts.get(label, 0), labels.index(label)))

    samples = [("given", real)] + [(f"resample {s}", corpus_sample(len(real), seed=s)) for s in range(1, resamples + 1)]
    everything = list(
        dict.fromkeys(test["text"].tolist() + [t for t, _ in synthetic] + [t for _, df in samples for t in df["text"]])
    )
    say(f"embedding {len(everything)} texts")
    vectors = dict(zip(everything, embed(everything)))
    llm = {}
    if "blend" in kinds:
        say(f"LLM probabilities of {len(everything)} texts (cached after the first time)")
        llm = dict(zip(everything, llm_probs(everything)))

    def features(texts: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
        return np.stack([vectors[t] for t in texts]), (np.stack([llm[t] for t in texts]) if llm else None)

    test_x, test_llm = features(test["text"].tolist())
    y_test = test["label"].map(index).to_numpy()
    runs = []
    for name, sample in samples:
        for kind in kinds:
            for with_synthetic in (False, True):
                texts = sample["text"].tolist() + ([t for t, _ in synthetic] if with_synthetic else [])
                y = sample["label"].map(index).tolist()
                y += [index[lab] for _, lab in synthetic] if with_synthetic else []
                x, x_llm = features(texts)
                model = classifier.fit(kind, x, x_llm if kind == "blend" else None, y, len(labels))
                predicted = model.predict_proba(test_x, test_llm if kind == "blend" else None).argmax(1)
                per_label = f1_score(y_test, predicted, labels=range(len(labels)), average=None, zero_division=0)
                runs.append(
                    {
                        "sample": name,
                        "kind": kind,
                        "synthetic": with_synthetic,
                        "train_size": len(texts),
                        "macro_f1": float(per_label.mean()),
                        "per_label_f1": {label: float(f) for label, f in zip(labels, per_label)},
                    }
                )
    summary = {}
    for kind in kinds:

        def values(metric: Callable[[dict], float], flag: bool, kind: str = kind) -> np.ndarray:
            return np.array([metric(r) for r in runs if r["kind"] == kind and r["synthetic"] == flag])

        entry = {}
        metrics = (("macro_f1", lambda r: r["macro_f1"]), (f"{minority}_f1", lambda r: r["per_label_f1"][minority]))
        for metric_name, metric in metrics:
            without, with_ = values(metric, False), values(metric, True)
            diff = with_ - without
            entry[metric_name] = {
                "without": [float(without.mean()), float(without.std())],
                "with": [float(with_.mean()), float(with_.std())],
                "difference": [float(diff.mean()), float(diff.std())],
                "better_in": f"{int((diff > 0).sum())} of {len(diff)}",
            }
        summary[kind] = entry
    return {
        "test_size": len(test),
        "real_size": len(real),
        "synthetic_added": len(synthetic),
        "minority": minority,
        "synthetic_by_label": dict(Counter(lab for _, lab in synthetic)),
        "runs": runs,
        "summary": summary,
    }


# ---------------------------------------------------------------- review in Label Studio


def review_rates(tasks: Sequence[dict], schema: Any) -> dict[str, Any]:
    """Accept/edit/reject counts and rates of the synthetic tasks in a Label Studio JSON export, overall and by mode
    and intended label; tasks nobody has reviewed yet are counted apart."""
    from backend.labelstudio import tasks as ls_tasks

    if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
        raise SyntheticError("not a Label Studio JSON export: expected a list of tasks")
    tally: dict[str, Counter] = {}

    def count(group: str, outcome: str) -> None:
        tally.setdefault(group, Counter())[outcome] += 1

    for task in tasks:
        if not is_synthetic(task):
            continue
        provenance = task["data"].get("provenance") if isinstance(task["data"].get("provenance"), dict) else {}
        intended = provenance.get("intended_label")
        annotations = [a for a in task.get("annotations") or [] if isinstance(a, dict)]
        live = [a for a in annotations if not a.get("was_cancelled")]
        if not annotations:
            outcome = "unreviewed"
        elif not live:
            outcome = "rejected"
        else:
            label = ls_tasks.resolve(live, schema)
            outcome = "unreviewed" if label is None else "accepted" if label == intended else "edited"
        for group in ("all", f"mode: {provenance.get('mode', '?')}", f"intended: {intended}"):
            count(group, outcome)
    out = {}
    for group, c in tally.items():
        reviewed = c["accepted"] + c["edited"] + c["rejected"]
        out[group] = {
            **{k: c[k] for k in ("accepted", "edited", "rejected", "unreviewed")},
            **{f"{k}_rate": (c[k] / reviewed if reviewed else None) for k in ("accepted", "edited", "rejected")},
        }
    return {"synthetic_tasks": sum(tally.get("all", Counter()).values()), "groups": out}


# ---------------------------------------------------------------- output


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown tables, for the terminal and the README."""
    lines = []
    intr = report.get("intrinsic")
    if intr:
        lines += [
            "Diversity, real vs accepted synthetic at the same size (n)",
            "",
            "| set | n | tokens/example real | synthetic | distinct-1 real | synthetic | distinct-2 real "
            "| synthetic | unique bigrams/example real | synthetic |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row in intr["diversity"]:
            r, s = row["real"], row["synthetic"]
            lines.append(
                f"| {row['set']} | {int(s['n'])} | {r['tokens_per_example']:.1f} | {s['tokens_per_example']:.1f} | "
                f"{r['distinct_1']:.3f} | {s['distinct_1']:.3f} | {r['distinct_2']:.3f} | {s['distinct_2']:.3f} | "
                f"{r['unique_bigrams_per_example']:.1f} | {s['unique_bigrams_per_example']:.1f} |"
            )
        balance = intr["label_balance"]
        lines += ["", "| label | real | candidates | accepted |", "|---|---|---|---|"]
        lines += [
            f"| {label} | {balance['real'][label]} | {balance['candidates'][label]} | {balance['accepted'][label]} |"
            for label in balance["real"]
        ]
        total = sum(intr["outcomes"].values())
        lines += ["", "| outcome | candidates | share |", "|---|---|---|"]
        lines += [f"| {k} | {v} | {_pct(v / total if total else None)} |" for k, v in intr["outcomes"].items()]
        lines += ["", "| mode | candidates | accepted |", "|---|---|---|"]
        lines += [
            f"| {m} | {e['candidates']} | {e['accepted']} ({_pct(e['accepted'] / e['candidates'])}) |"
            for m, e in intr["by_mode"].items()
        ]
    ext = report.get("extrinsic")
    if ext:
        samples = len(ext["runs"]) // (2 * len(ext["summary"]))
        lines += [
            "",
            f"Test split: {ext['test_size']} items; {samples} real training samples of {ext['real_size']} "
            f"texts (the one given and {samples - 1} resampled), each without and with the "
            f"{ext['synthetic_added']} synthetic examples {ext['synthetic_by_label']}",
            "",
            "| kind | metric | without synthetic | with synthetic | difference | better in |",
            "|---|---|---|---|---|---|",
        ]
        for kind, entry in ext["summary"].items():
            for metric, v in entry.items():
                lines.append(
                    f"| {kind} | {metric} | {v['without'][0]:.3f} ± {v['without'][1]:.3f} | "
                    f"{v['with'][0]:.3f} ± {v['with'][1]:.3f} | "
                    f"{v['difference'][0]:+.3f} ± {v['difference'][1]:.3f} | "
                    f"{v['better_in']} |"
                )
    review = report.get("review")
    if review:
        lines += [
            "",
            f"Synthetic tasks in the export: {review['synthetic_tasks']}",
            "",
            "| group | accepted | edited | rejected | unreviewed |",
            "|---|---|---|---|---|",
        ]
        for group, g in review["groups"].items():
            lines.append(
                f"| {group} | {g['accepted']} ({_pct(g['accepted_rate'])}) | "
                f"{g['edited']} ({_pct(g['edited_rate'])}) | "
                f"{g['rejected']} ({_pct(g['rejected_rate'])}) | {g['unreviewed']} |"
            )
    return "\n".join(lines)


def plot(report: dict[str, Any], path: str | Path) -> Path:
    """Candidates by outcome, and each run's F1 without → with synthetic (one line per real sample and kind)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    intr, ext = report.get("intrinsic"), report.get("extrinsic")
    panels = 1 + (2 if ext else 0)
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.6), squeeze=False)
    axes = axes[0]
    if intr:
        outcomes = {k: v for k, v in intr["outcomes"].items() if v}
        colors = ["tab:green" if k == "accepted" else "tab:gray" for k in outcomes]
        axes[0].barh(list(outcomes)[::-1], list(outcomes.values())[::-1], color=colors[::-1])
        axes[0].set_xlabel("candidates")
        axes[0].set_title(f"{sum(outcomes.values())} candidates by outcome", fontsize=10)
    if ext:
        minority = ext["minority"]
        markers = {"classifier": "o", "blend": "s"}
        for ax, (metric, title) in zip(axes[1:], (("macro", "macro-F1"), (minority, f"{minority} F1"))):
            for kind in ext["summary"]:
                pairs: dict[str, list[float]] = {}
                for run in ext["runs"]:
                    if run["kind"] != kind:
                        continue
                    value = run["macro_f1"] if metric == "macro" else run["per_label_f1"][minority]
                    pairs.setdefault(run["sample"], [0.0, 0.0])[int(run["synthetic"])] = value
                for i, (without, with_) in enumerate(pairs.values()):
                    color = "tab:blue" if kind == "classifier" else "tab:orange"
                    ax.plot(
                        [0, 1],
                        [without, with_],
                        marker=markers.get(kind, "o"),
                        color=color,
                        alpha=0.8,
                        label=kind if i == 0 else None,
                    )
            ax.set_xticks([0, 1], ["real only", "real + synthetic"])
            ax.set_xlim(-0.3, 1.3)
            ax.set_title(f"{title} on the {ext['test_size']}-item test split", fontsize=10)
            ax.grid(axis="y", alpha=0.3)
        axes[1].legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
