"""Inter-annotator agreement from a Label Studio export (JSON, JSON-MIN or CSV).

The export is reduced to one label per annotator per task (backend/labelstudio/export.py), then:

- Cohen's κ for every pair of annotators, on the items both labeled (scikit-learn);
- Fleiss' κ on the items every annotator labeled (statsmodels);
- Krippendorff's α, nominal, on all items with missing labels allowed (krippendorff);
- percent agreement and per-label specific agreement (defined in their docstrings);
- percentile bootstrap intervals that resample items, and the Landis & Koch band of each κ/α.

A multi-label question (choice="multiple") is reduced to the set of labels each annotator chose (analyse_multilabel):
Krippendorff's α with the MASI set distance over the sets, exact-set agreement, and per label (chosen or not)
Cohen's κ per pair, Fleiss' κ and α.

labelloop agreement is the command-line front end.
"""

from __future__ import annotations

import csv
import math
import warnings
from itertools import combinations
from pathlib import Path
from typing import Any, Sequence

import krippendorff
import numpy as np
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters, cohens_kappa
from statsmodels.stats.inter_rater import fleiss_kappa as _statsmodels_fleiss_kappa

from backend.errors import LabelloopError
from backend.labelstudio.export import MISSING, Dataset
from backend.labelstudio.records import AnnotatorId

GATES = ("min-pairwise", "fleiss", "alpha")


class AgreementError(LabelloopError, ValueError):
    """A problem the user has to fix (a file that cannot be written): shown as one line."""

    http_status = 400


# ---------------------------------------------------------------------------------------------------------------
# Statistics. All take the items × annotators matrix of label indices (MISSING where not labeled) and return None
# where the statistic is undefined.


def _finite(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def cohen_kappa(a: Sequence[int] | np.ndarray, b: Sequence[int] | np.ndarray) -> float | None:
    """Cohen's κ (scikit-learn) of two annotators over the items both labeled.

    None with fewer than 2 common items, or when κ is undefined (both gave the same single label throughout).
    """
    x, y = np.asarray(a), np.asarray(b)
    both = (x != MISSING) & (y != MISSING)
    if both.sum() < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns before returning nan for the constant case we report
        return _finite(cohen_kappa_score(x[both], y[both]))


def fleiss_kappa(codes: np.ndarray, n_labels: int) -> float | None:
    """Fleiss' κ (statsmodels) over the items that every annotator labeled; None with fewer than 2 annotators."""
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[1] < 2:
        return None
    complete = codes[(codes != MISSING).all(axis=1)]
    if len(complete) == 0:
        return None
    table, _ = aggregate_raters(complete, n_cat=n_labels)
    with np.errstate(all="ignore"):
        return _finite(_statsmodels_fleiss_kappa(table, method="fleiss"))


def krippendorff_alpha(codes: np.ndarray) -> float | None:
    """Krippendorff's α, nominal (krippendorff package), over all items with missing labels allowed."""
    codes = np.asarray(codes)
    if codes.size == 0:
        return None
    data = codes.T.astype(float)
    data[data == MISSING] = np.nan
    try:
        with np.errstate(all="ignore"):
            value = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    except ValueError:
        return None  # one label in the whole data, or no item with two labels
    return _finite(value)


def percent_agreement(codes: np.ndarray) -> float | None:
    """Share of items with at least 2 labels on which all annotators gave the same label (None if no such item)."""
    codes = np.asarray(codes)
    agree = _item_agreement(codes)
    agree = agree[~np.isnan(agree)]
    return float(agree.mean()) if len(agree) else None


def specific_agreement(codes: np.ndarray, n_labels: int) -> list[float | None]:
    """Per-label specific agreement, one value per label index.

    For label j, over items with at least 2 labels (n_ij annotators chose j out of m_i):
        sum n_ij (n_ij - 1) / sum n_ij (m_i - 1)
    i.e. of the pairwise judgements that involve j, the share where both chose j. With two annotators this is
    2·n_both / (n_a + n_b). None for a label never used on such an item.
    """
    counts = _value_counts(np.asarray(codes), n_labels)
    raters = counts.sum(axis=1)
    counts, raters = counts[raters >= 2], raters[raters >= 2]
    agreeing = (counts * (counts - 1)).sum(axis=0)
    possible = (counts * (raters[:, None] - 1)).sum(axis=0)
    return [float(a / p) if p else None for a, p in zip(agreeing, possible)]


def landis_koch(value: float | None) -> str | None:
    """Landis & Koch (1977) band: <0 poor, ≤0.20 slight, ≤0.40 fair, ≤0.60 moderate, ≤0.80 substantial, else
    almost perfect."""
    if value is None:
        return None
    value = round(value, 9)  # κ from counts lands a hair off a boundary (0.4 as 0.39999999999999997)
    if value < 0:
        return "poor"
    for upper, band in ((0.20, "slight"), (0.40, "fair"), (0.60, "moderate"), (0.80, "substantial")):
        if value <= upper:
            return band
    return "almost perfect"


def _value_counts(codes: np.ndarray, n_labels: int) -> np.ndarray:
    """Items × labels: how many annotators chose each label on each item."""
    counts = np.zeros((codes.shape[0], n_labels), dtype=int)
    for column in codes.T:
        rows = np.nonzero(column != MISSING)[0]
        counts[rows, column[rows]] += 1
    return counts


def _item_agreement(codes: np.ndarray) -> np.ndarray:
    """Per item: 1.0 if all its labels agree, 0.0 if not, nan with fewer than 2 labels."""
    labeled = codes != MISSING
    lowest = np.where(labeled, codes, np.iinfo(int).max).min(axis=1, initial=np.iinfo(int).max)
    highest = np.where(labeled, codes, MISSING).max(axis=1, initial=MISSING)
    return np.where(labeled.sum(axis=1) >= 2, (lowest == highest).astype(float), np.nan)


def _pair_columns(annotators: Sequence[AnnotatorId]) -> dict[str, tuple[int, int]]:
    """Pair key "A|B" → the pair's columns (i < j); A < B numerically when both are ints, else as strings."""
    pairs = {}
    for i, j in combinations(range(len(annotators)), 2):
        a, b = annotators[i], annotators[j]
        if not (a < b if isinstance(a, int) and isinstance(b, int) else str(a) < str(b)):
            a, b = b, a
        pairs[f"{a}|{b}"] = (i, j)
    return pairs


def point_statistics(codes: np.ndarray, n_labels: int) -> dict[str, Any]:
    """Every statistic on one matrix, by the libraries: {"cohen": {(i, j): κ}, "fleiss", "alpha", "percent"}."""
    codes = np.asarray(codes)
    return {
        "cohen": {(i, j): cohen_kappa(codes[:, i], codes[:, j]) for i, j in combinations(range(codes.shape[1]), 2)},
        "fleiss": fleiss_kappa(codes, n_labels),
        "alpha": krippendorff_alpha(codes),
        "percent": percent_agreement(codes),
    }


def masi_distance(a: int, b: int) -> float:
    """MASI distance (Passonneau 2006) of two label sets given as bitmasks: 1 - Jaccard × monotonicity, where
    monotonicity is 1 for equal sets, 2/3 when one holds the other, 1/3 when they overlap, 0 when disjoint.
    Written here on bitmasks so krippendorff's vectorised α can take it as its distance."""
    if a == b:
        return 0.0
    common, union = (a & b).bit_count(), (a | b).bit_count()
    monotonicity = 2 / 3 if (a & b) in (a, b) else 1 / 3 if common else 0.0
    return 1.0 - common / union * monotonicity


def _masi_metric(v1, v2, i1, i2, n_v, dtype=np.float64) -> np.ndarray:
    # krippendorff's DistanceMetric: distances between value-domain entries v1 and v2 (arrays of bitmasks).
    return np.vectorize(masi_distance, otypes=[float])(v1.astype(np.int64), v2.astype(np.int64)).astype(dtype)


def masi_alpha(sets: np.ndarray) -> float | None:
    """Krippendorff's α over items × annotators label sets (bitmasks, MISSING where not labeled), MASI distance."""
    sets = np.asarray(sets)
    present = sets[sets != MISSING]
    if present.size == 0 or len(np.unique(present)) < 2:
        return None
    data = sets.T.astype(float)
    data[data == MISSING] = np.nan
    try:
        with np.errstate(all="ignore"):
            value = krippendorff.alpha(
                reliability_data=data, value_domain=np.unique(present).astype(float), level_of_measurement=_masi_metric
            )
    except ValueError:
        return None
    return _finite(value)


def analyse_multilabel(dataset: Dataset) -> dict[str, Any]:
    """A multi-label question's agreement as one JSON-ready dict: α (MASI) over the sets, exact-set agreement,
    and per label the agreement on whether it applies."""
    sets = dataset.sets()
    pairs = _pair_columns(dataset.annotators)
    notes = list(dataset.notes)
    alpha = masi_alpha(sets)
    if alpha is None:
        notes.append("Krippendorff's α (MASI) is null: no item has two or more labels, or one set is used throughout")
    per_label = {}
    for j, label in enumerate(dataset.labels):
        binary = np.where(sets == MISSING, MISSING, (sets >> j) & 1)
        stats = point_statistics(binary, 2)
        per_label[label] = {
            "cohen_kappa": {key: stats["cohen"][columns] for key, columns in pairs.items()},
            "fleiss_kappa": stats["fleiss"],
            "krippendorff_alpha": stats["alpha"],
            "chosen": int((binary == 1).sum()),
        }
    labeled = sets != MISSING
    return {
        "source": {"format": dataset.source_format, "from_name": dataset.from_name},
        "multi_label": True,
        "annotators": [str(a) for a in dataset.annotators],
        "labels": list(dataset.labels),
        "n_items": len(dataset.items),
        "krippendorff_alpha_masi": alpha,
        "krippendorff_n_items": int((labeled.sum(axis=1) >= 2).sum()),
        "exact_set_agreement": percent_agreement(sets),
        "per_label": per_label,
        "bands": {"krippendorff_alpha_masi": landis_koch(alpha)},
        "counts": dict(dataset.counts),
        "out_of_config_labels": dict(dataset.out_of_config),
        "notes": notes,
    }


def _num(value: float | None) -> str:
    # Adding 0.0 turns the -0.0 left by rounding a tiny negative float into 0.0, so it prints as 0.000.
    return "null" if value is None else f"{round(value, 3) + 0.0:.3f}"


def format_multilabel_table(report: dict[str, Any]) -> str:
    num = _num
    lines = [
        f"Annotators: {', '.join(report['annotators']) or 'none'}   labels (multi-label): "
        f"{', '.join(report['labels']) or 'none'}",
        f"Items with at least one answer: {report['n_items']}   (format {report['source']['format']}, "
        f"tag {report['source']['from_name']})",
        "",
        f"  Krippendorff alpha (MASI set distance)  {num(report['krippendorff_alpha_masi']):>7}   "
        f"{report['krippendorff_n_items']} items   {report['bands']['krippendorff_alpha_masi'] or '-'}",
        f"  Exact-set agreement (all chose the same set)  {num(report['exact_set_agreement']):>7}",
        "",
        "Per label (chosen or not): Fleiss kappa, alpha, Cohen's kappa per pair",
    ]
    for label, row in report["per_label"].items():
        pairs = ", ".join(f"{pair} {num(value)}" for pair, value in row["cohen_kappa"].items()) or "no pairs"
        lines.append(
            f"  {label:<20} fleiss {num(row['fleiss_kappa']):>7}  alpha {num(row['krippendorff_alpha']):>7}"
            f"  chosen {row['chosen']:>4}  {pairs}"
        )
    lines += ["", "Counts"] + [f"  {key.replace('_', ' '):<32} {value}" for key, value in report["counts"].items()]
    if report["notes"]:
        lines += ["", "Notes"] + [f"  - {note}" for note in report["notes"]]
    return "\n".join(lines)


class _Resampler:
    """The statistics of point_statistics on resampled items (nan where undefined), from per-item tables built once.

    Calling the libraries on raw labels costs about 6 ms per resample with 3 annotators (scikit-learn validates
    its input on every call), so 1,000 resamples would take seconds; on these tables it is well under 1 ms.
    The libraries still do the arithmetic: statsmodels' κ from a confusion table, Fleiss' κ from the items ×
    labels table, and Krippendorff's α from value counts.
    """

    def __init__(self, codes: np.ndarray, n_labels: int):
        self.n_labels = n_labels
        self.counts = _value_counts(codes, n_labels)
        self.complete = (codes != MISSING).all(axis=1) if codes.shape[1] >= 2 else np.zeros(len(codes), bool)
        self.agree = _item_agreement(codes)
        # Each common item as one cell of the pair's confusion table; -1 where the pair did not both label it.
        self.cells = {}
        for i, j in combinations(range(codes.shape[1]), 2):
            both = (codes[:, i] != MISSING) & (codes[:, j] != MISSING)
            self.cells[(i, j)] = np.where(both, codes[:, i] * n_labels + codes[:, j], -1)

    def __call__(self, idx: np.ndarray) -> dict[str, Any]:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cohen = {pair: self._cohen(cells[idx]) for pair, cells in self.cells.items()}
            complete = self.counts[idx][self.complete[idx]]
            fleiss = _statsmodels_fleiss_kappa(complete, method="fleiss") if len(complete) else np.nan
            try:
                alpha = krippendorff.alpha(value_counts=self.counts[idx], level_of_measurement="nominal")
            except ValueError:
                alpha = np.nan
            agree = self.agree[idx]
            percent = np.nanmean(agree) if (~np.isnan(agree)).any() else np.nan
        return {"cohen": cohen, "fleiss": float(fleiss), "alpha": float(alpha), "percent": float(percent)}

    def _cohen(self, cells: np.ndarray) -> float:
        cells = cells[cells >= 0]
        if len(cells) < 2:
            return np.nan
        table = np.bincount(cells, minlength=self.n_labels**2).reshape(self.n_labels, self.n_labels)
        return float(cohens_kappa(table, return_results=False))


def bootstrap_intervals(
    codes: np.ndarray, n_labels: int, resamples: int = 1000, seed: int = 0, confidence: float = 0.95
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Percentile bootstrap intervals, resampling items with replacement (all statistics on the same resamples).

    Returns intervals shaped like point_statistics ([low, high], or None if never defined) and, in the same shape,
    how many resamples left each statistic undefined (those are left out of its interval).
    """
    codes = np.asarray(codes)
    resampler = _Resampler(codes, n_labels)
    rng = np.random.default_rng(seed)
    draws = [resampler(rng.integers(0, len(codes), len(codes))) for _ in range(resamples)]
    tail = 100 * (1 - confidence) / 2

    def summarise(values: list[float]) -> tuple[list[float] | None, int]:
        array = np.asarray(values)
        defined = array[np.isfinite(array)]
        if not len(defined):
            return None, len(array)
        low, high = np.percentile(defined, [tail, 100 - tail])
        return [float(low), float(high)], len(array) - len(defined)

    intervals: dict[str, Any] = {"cohen": {}}
    undefined: dict[str, Any] = {"cohen": {}}
    for pair in resampler.cells:
        intervals["cohen"][pair], undefined["cohen"][pair] = summarise([d["cohen"][pair] for d in draws])
    for name in ("fleiss", "alpha", "percent"):
        intervals[name], undefined[name] = summarise([d[name] for d in draws])
    return intervals, undefined


# ---------------------------------------------------------------------------------------------------------------
# The report


def analyse(dataset: Dataset, bootstrap: int = 1000, seed: int = 0, confidence: float = 0.95) -> dict[str, Any]:
    """All statistics of a dataset as one JSON-ready dict (the CLI's --format json output)."""
    codes = dataset.codes()
    n_labels = len(dataset.labels)
    names = [str(a) for a in dataset.annotators]
    pairs = _pair_columns(dataset.annotators)
    stats = point_statistics(codes, n_labels)
    notes = list(dataset.notes)

    cohen, cohen_n = {}, {}
    for key, (i, j) in pairs.items():
        cohen[key] = stats["cohen"][(i, j)]
        cohen_n[key] = int(((codes[:, i] != MISSING) & (codes[:, j] != MISSING)).sum())
        if cohen[key] is None:
            reason = (
                "fewer than 2 items in common"
                if cohen_n[key] < 2
                else "both gave one and the same label throughout, so κ is undefined (scikit-learn returns nan)"
            )
            notes.append(f"Cohen's κ for {key} is null: {reason}")

    labeled = codes != MISSING
    complete = int(labeled.all(axis=1).sum()) if len(names) >= 2 else 0
    pairable = int((labeled.sum(axis=1) >= 2).sum())
    if len(names) < 2:
        notes.append(f"{len(names)} annotator(s) only: pairwise and Fleiss' κ need two or more")
    elif stats["fleiss"] is None:
        notes.append(
            "Fleiss' κ is null: "
            + (
                "no item was labeled by every annotator"
                if complete == 0
                else "one and the same label on every item, so κ is undefined"
            )
        )
    if stats["alpha"] is None:
        notes.append(
            "Krippendorff's α is null: "
            + ("no item has two or more labels" if pairable == 0 else "only one label is used, so α is undefined")
        )
    if stats["percent"] is None:
        notes.append("percent agreement is null: no item has two or more labels")

    intervals: dict[str, Any] = {"cohen": {}, "fleiss": None, "alpha": None, "percent": None}
    if bootstrap > 0 and len(codes):
        intervals, undefined = bootstrap_intervals(codes, n_labels, bootstrap, seed, confidence)
        partly = [(f"Cohen's κ for {key}", undefined["cohen"][columns]) for key, columns in pairs.items()]
        partly += [
            ("Fleiss' κ", undefined["fleiss"]),
            ("Krippendorff's α", undefined["alpha"]),
            ("percent agreement", undefined["percent"]),
        ]
        for name, count in partly:
            if 0 < count < bootstrap:
                notes.append(f"{name} was undefined in {count} of {bootstrap} resamples; its interval uses the others")

    def ci(value: float | None, interval: list[float] | None) -> list[float] | None:
        return interval if value is not None else None

    specific = specific_agreement(codes, n_labels)
    label_totals = _value_counts(codes, n_labels).sum(axis=0)
    return {
        "source": {"format": dataset.source_format, "from_name": dataset.from_name},
        "annotators": names,
        "labels": list(dataset.labels),
        "n_items": len(dataset.items),
        "cohen_kappa": cohen,
        "cohen_kappa_ci": {key: ci(cohen[key], intervals["cohen"].get(columns)) for key, columns in pairs.items()},
        "cohen_kappa_n": cohen_n,
        "fleiss_kappa": stats["fleiss"],
        "fleiss_kappa_ci": ci(stats["fleiss"], intervals["fleiss"]),
        "fleiss_n_items": complete,
        "krippendorff_alpha": stats["alpha"],
        "krippendorff_alpha_ci": ci(stats["alpha"], intervals["alpha"]),
        "krippendorff_n_items": pairable,
        "percent_agreement": stats["percent"],
        "percent_agreement_ci": ci(stats["percent"], intervals["percent"]),
        "percent_agreement_n_items": pairable,
        "per_label_agreement": dict(zip(dataset.labels, specific)),
        "label_totals": {label: int(n) for label, n in zip(dataset.labels, label_totals)},
        "bands": {
            "cohen_kappa": {key: landis_koch(value) for key, value in cohen.items()},
            "fleiss_kappa": landis_koch(stats["fleiss"]),
            "krippendorff_alpha": landis_koch(stats["alpha"]),
        },
        "bootstrap": {"resamples": bootstrap, "seed": seed, "confidence": confidence, "method": "percentile, items"},
        "counts": dict(dataset.counts),
        "out_of_config_labels": dict(dataset.out_of_config),
        "notes": notes,
    }


def check_gate(report: dict[str, Any], target: float, gate_on: str = "min-pairwise") -> tuple[bool, str]:
    """Whether the chosen statistic reaches the target, and one line saying so (or by how much it falls short).

    min-pairwise is the lowest Cohen's κ among the pairs where κ is defined; a null statistic fails.
    """
    if gate_on == "min-pairwise":
        defined = {pair: value for pair, value in report["cohen_kappa"].items() if value is not None}
        pair = min(defined, key=defined.__getitem__) if defined else None
        name = f"minimum pairwise Cohen's kappa ({pair})" if pair else "minimum pairwise Cohen's kappa"
        value = defined.get(pair) if pair else None
    elif gate_on == "fleiss":
        name, value = "Fleiss' kappa", report["fleiss_kappa"]
    elif gate_on == "alpha":
        name, value = "Krippendorff's alpha", report["krippendorff_alpha"]
    else:
        raise ValueError(f"unknown gate statistic {gate_on!r}; expected one of {', '.join(GATES)}")
    if value is None:
        return False, f"gate failed: {name} is null (undefined), target {target:.3f}"
    if round(value, 9) < target:
        return False, f"gate failed: {name} = {value:.3f} is {target - value:.3f} below the target {target:.3f}"
    return True, f"gate passed: {name} = {value:.3f} reaches the target {target:.3f}"


def write_disagreements(dataset: Dataset, path: str | Path) -> int:
    """Write every item with two or more labels that are not all the same, for adjudication; returns the row count.

    Columns: task_id, text, then one column per annotator (their label, empty if they did not label the item).
    """
    rows = [item for item in dataset.items if len(item.labels) >= 2 and len(set(item.labels.values())) > 1]
    try:
        with Path(path).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["task_id", "text", *(str(a) for a in dataset.annotators)])
            for item in rows:
                writer.writerow([item.task_id, item.text or "", *(item.labels.get(a, "") for a in dataset.annotators)])
    except OSError as exc:
        raise AgreementError(f"cannot write {path}: {exc.strerror or exc}") from None
    return len(rows)


def format_table(report: dict[str, Any]) -> str:
    """The report as readable text: pairs, Fleiss, α, percent agreement, per-label agreement, counts, notes."""

    num = _num

    def interval(ci: list[float] | None) -> str:
        return "" if ci is None else f"[{num(ci[0])}, {num(ci[1])}]"

    boot = report["bootstrap"]
    ci_title = f"{boot['confidence']:.0%} CI" if boot["resamples"] else "CI (off)"
    lines = [
        f"Annotators: {', '.join(report['annotators']) or 'none'}   labels: {', '.join(report['labels']) or 'none'}",
        f"Items with at least one label: {report['n_items']}   (format {report['source']['format']}, "
        f"tag {report['source']['from_name']})",
        "",
        "Cohen's kappa per pair"
        + (f" (bootstrap, {boot['resamples']} resamples, seed {boot['seed']})" if boot["resamples"] else ""),
        f"  {'pair':<20} {'kappa':>7}  {ci_title:<18} {'n':>6}  band",
    ]
    for pair, value in report["cohen_kappa"].items():
        lines.append(
            f"  {pair:<20} {num(value):>7}  {interval(report['cohen_kappa_ci'][pair]):<18} "
            f"{report['cohen_kappa_n'][pair]:>6}  {report['bands']['cohen_kappa'][pair] or '-'}"
        )
    if not report["cohen_kappa"]:
        lines.append("  (no pairs)")
    lines += [
        "",
        f"  {'statistic':<34} {'value':>7}  {ci_title:<18} {'n':>6}  band",
        f"  {'Fleiss kappa (items all labeled)':<34} {num(report['fleiss_kappa']):>7}  "
        f"{interval(report['fleiss_kappa_ci']):<18} {report['fleiss_n_items']:>6}  "
        f"{report['bands']['fleiss_kappa'] or '-'}",
        f"  {'Krippendorff alpha (nominal)':<34} {num(report['krippendorff_alpha']):>7}  "
        f"{interval(report['krippendorff_alpha_ci']):<18} {report['krippendorff_n_items']:>6}  "
        f"{report['bands']['krippendorff_alpha'] or '-'}",
        f"  {'Percent agreement (all agree)':<34} {num(report['percent_agreement']):>7}  "
        f"{interval(report['percent_agreement_ci']):<18} {report['percent_agreement_n_items']:>6}",
        "",
        "Per-label specific agreement (share of pairwise judgements involving the label where both chose it)",
    ]
    for label, value in report["per_label_agreement"].items():
        lines.append(f"  {label:<20} {num(value):>7}   used {report['label_totals'][label]} time(s)")
    lines += ["", "Counts"]
    lines += [f"  {key.replace('_', ' '):<32} {value}" for key, value in report["counts"].items()]
    if report["notes"]:
        lines += ["", "Notes"] + [f"  - {note}" for note in report["notes"]]
    return "\n".join(lines)
