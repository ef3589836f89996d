"""The tables and plots the simulations' results are read with: labelloop compare-strategies' (compare_table,
compare_plot) and labelloop simulate-finish's (finish_table, finish_plot, and against pool size pool_table,
plot_pools). What they read is declared in backend/bench/results.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from backend.bench import finish_simulation, simulation
from backend.bench.results import CompareResults, FinishResults, PoolRow

# ---------------------------------------------------------------------------------------------------------------
# labelloop compare-strategies


def compare_table(results: CompareResults) -> str:
    """A plain-text table of the results, one block per setup (--kind)."""
    cfg = results["config"]
    zero = results.get("zero_shot", {})
    lines = [
        f"{cfg.get('data', 'rotten_tomatoes')}: pool {cfg['pool']}, test {cfg['test_size']}, seeds "
        f"{len(cfg['strategy_seeds'])}, seed set {cfg['seed_size']}, batch {cfg['batch']}, budget {cfg['budget']}; "
        f"LLM alone macro-F1 {results['llm_alone_macro_f1']:.3f} ({zero.get('calibration')} calibration)",
    ]
    if zero.get("by_calibration"):
        lines.append(
            "zero-shot macro-F1 by calibration (test / pool): "
            + ", ".join(f"{m} {v['test']:.3f} / {v['pool']:.3f}" for m, v in zero["by_calibration"].items())
        )
    if zero.get("resemblance") is not None:
        lines.append(f"the pool's resemblance to the fitted file's texts: {zero['resemblance']:.3f}")
    t = zero.get("taught")
    if t:
        lines.append(
            f"before the first label, {t['recipe']} taught by the LLM's {t['pseudo_labels']} surest answers on the pool "
            f"(test / pool): {t['test']:.3f} / {t['pool']:.3f}"
        )
    if zero.get("lexicon_macro_f1") is not None:
        lines.append(f"rule-based lexicon (VADER) on the test split: {zero['lexicon_macro_f1']:.3f}")
    lines += [
        "",
        f"macro-F1 after N random labels (mean of {len(cfg['curve_seeds'])} seeds; served: {results['served_kind']})",
    ]
    sizes = list(results["kinds"]["llm"]["macro_f1_at"])
    lines.append(f"  {'kind':12}" + "".join(f"{n:>8}" for n in sizes))
    for setup, block in results["kinds"].items():
        lines.append(f"  {setup:12}" + "".join(f"{block['macro_f1_at'][n]:8.3f}" for n in sizes))
    for setup, block in results["kinds"].items():
        for n, counts in block.get("chosen_at", {}).items():
            picks = ", ".join(f"{recipe} {seeds}" for recipe, seeds in sorted(counts.items(), key=lambda kv: -kv[1]))
            lines.append(f"  {setup} after {n} labels chose: {picks}")
    for setup, block in results["kinds"].items():
        if "strategies" not in block:
            continue
        pct = round(100 * cfg["target_fraction"])
        lines += [
            "",
            f"{setup}: full pool macro-F1 {block['full_pool_macro_f1']:.3f}, target ({pct}%) {block['target']:.3f}",
            f"  {'strategy':18} {'auc':>13} {'final F1':>9} {f'labels to {pct}%':>15} {'reached':>8} {'vs random':>10}",
        ]
        for name, s in block["strategies"].items():
            l2t = "-" if s["labels_to_target"] is None else f"{s['labels_to_target']:.0f}"
            ratio = "-" if s["ratio_to_random"] is None else f"{s['ratio_to_random']:.2f}"
            runs = len(s["labels_to_target_per_seed"])
            lines.append(
                f"  {name:18} {s['auc']:.3f} ± {s['auc_std']:.3f} {s['final_f1']:9.3f} {l2t:>15} "
                f"{s['reached']:>4}/{runs:<3} {ratio:>10}"
            )
    return "\n".join(lines)


def compare_plot(results: CompareResults, path: str | Path) -> None:
    """Learning curves (mean ± std over seeds), one panel per setup (--kind), with the target and the LLM alone."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    setups = [k for k, block in results["kinds"].items() if "strategies" in block]
    fig, axes = plt.subplots(1, len(setups) + 1, figsize=(7 * (len(setups) + 1), 5.5), sharey=True, squeeze=False)
    names = results["config"]["strategies"]
    curves = axes[0][0]
    for setup, block in results["kinds"].items():
        sizes = [int(n) for n in block["macro_f1_at"]]
        served = setup == results.get("served_kind")
        curves.plot(
            sizes,
            list(block["macro_f1_at"].values()),
            "o-",
            lw=2.5 if served else 1.3,
            label=f"{setup} (served)" if served else setup,
        )
    curves.set_xscale("log")
    curves.set_title("each kind on random labels")
    curves.set_xlabel("random labels")
    curves.grid(alpha=0.3)
    curves.legend(fontsize=8, loc="lower right")
    # tab10 without its grey, which the target line uses; random is black
    palette = [plt.get_cmap("tab10")(i) for i in range(10) if i != 7]
    for ax, setup in zip(axes[0][1:], setups):
        block = results["kinds"][setup]
        for i, name in enumerate(names):
            c = block["strategies"][name]["curve"]
            x, m, s = np.array(c["labels"]), np.array(c["mean"]), np.array(c["std"])
            color = "black" if name == "random" else palette[i % len(palette)]
            style = "--" if name in simulation.JUDGED or name == simulation.HYBRID_LLM else "-"
            ax.plot(x, m, style, color=color, lw=2 if name == "random" else 1.3, label=name)
            ax.fill_between(x, m - s, m + s, color=color, alpha=0.12, lw=0)
        pct = round(100 * results["config"]["target_fraction"])
        ax.axhline(block["target"], color="grey", ls=":", lw=1.5, label=f"target: {pct}% of the full-pool model")
        ax.axhline(
            results["llm_alone_macro_f1"],
            color="brown",
            ls="-.",
            lw=1.2,
            label=f"LLM alone ({results['llm_alone_macro_f1']:.3f})",
        )
        ax.set_title(f"{setup}: full pool {block['full_pool_macro_f1']:.3f}, target {block['target']:.3f}")
        ax.set_xlabel("labeled pool items")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("macro-F1 on the test split")
    axes[0][-1].legend(fontsize=8, loc="lower right")
    cfg = results["config"]
    fig.suptitle(
        f"Learning curves, mean ± std over {len(cfg['strategy_seeds'])} seeds (pool {cfg['pool']}, "
        f"test {cfg['test_size']})"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------------------
# labelloop simulate-finish


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def finish_table(results: FinishResults) -> str:
    cfg = results["config"]
    lines = [
        f"pool {cfg['pool']}, seeds {len(cfg['seeds'])}, target {cfg['target']} (level {cfg['level']}), model "
        f"{cfg['kind']}, seed set {cfg['seed_size']}, batch {cfg['batch']}, patience {cfg['patience']}",
    ]
    blocks = [(cfg["kind"], results["strategies"])]
    if "llm_alone" in results:
        blocks.append(("LLM alone", results["llm_alone"]["strategies"]))
    for title, by_strategy in blocks:
        lines += [
            "",
            f"{title}:",
            f"  {'strategy':18} {'human frac':>10} {'human':>7} {'audit':>6} {'auto frac':>9} {'auto acc min':>12} "
            f"{'kept':>5} {'finished acc':>12} {'oracle frac':>11}  stop",
        ]
        for name, s in by_strategy.items():
            reasons = sorted({seed["stop_reason"] for seed in s["seeds"]})
            lines.append(
                f"  {name:18} {s['human_fraction']:10.3f} {s['human_labels_mean']:7.0f} {s['audit_labels_mean']:6.0f} "
                f"{s['auto_fraction_mean']:9.3f} {_fmt(s['auto_accuracy_min']):>12} {s['promise_kept']:5.2f} "
                f"{s['finished_accuracy_mean']:12.4f} "
                f"{s['oracle_human_fraction']:11.3f}  {'; '.join(reasons)}"
            )
    lines.append("  (oracle frac: the human fraction at the same finish had the threshold known the truth)")
    audited = [(name, s["audits"]) for name, s in results["strategies"].items() if s.get("audits")]
    if audited:
        lines += [
            "",
            "every audit at the same loops' finish:",
            f"  {'strategy':18} {'audit':10} {'human frac':>10} "
            f"{'labels':>7} {'kept':>5} {'auto acc min':>12} {'nothing labeled':>15}",
        ]
        for name, audits in audited:
            for audit_name, a in audits.items():
                lines.append(
                    f"  {name:18} {audit_name:10} {a['human_fraction']:10.3f} {a['audit_labels_mean']:7.0f} "
                    f"{a['promise_kept']:5.2f} {_fmt(a['auto_accuracy_min']):>12} {a['nothing_labeled']:15d}"
                )
    for model, c in results.get("ceiling", {}).items():
        lines.append(
            f"  ceiling, {model}: at most {c['auto_fraction_max']:.3f} of the pool at {cfg['target']} true "
            f"accuracy (out-of-fold, 80% of the pool to train on): human fraction >= "
            f"{c['human_fraction_floor']:.3f}"
        )
    g = results["goal"]
    verdict = {None: "not run", True: "MET", False: "NOT MET"}[g["met"]]
    lines += [
        "",
        f"goal ({g['strategy']}, {cfg['kind']}): human_fraction <= {g['human_fraction_max']} and "
        f"auto_accuracy_min >= {g['auto_accuracy_min']}: {verdict}",
    ]
    return "\n".join(lines)


def finish_plot(results: FinishResults, path: str | Path) -> None:
    """Human labels against the finished dataset's accuracy: per strategy, each seed's trajectory (what finishing at
    each step with a threshold would give, thin line) and its finish (marker), the means (rings); the LLM alone
    dashed, with crosses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = results["config"]
    n_pool = cfg["pool"]
    fig, ax = plt.subplots(figsize=(9, 6))
    palette = [plt.get_cmap("tab10")(i) for i in range(10) if i != 7]
    blocks = [(results["strategies"], "-", "o", "")]
    if "llm_alone" in results:
        blocks.append((results["llm_alone"]["strategies"], "--", "X", "LLM alone, "))
    for by_strategy, style, marker, prefix in blocks:
        for i, (name, s) in enumerate(by_strategy.items()):
            color = "black" if name == "random" else palette[i % len(palette)]
            for j, seed in enumerate(s["seeds"]):
                routed = [st for st in seed["steps"] if st["threshold"] is not None]  # the rest: all human
                xs = [st["human"] for st in routed]
                ys = [st["finished_accuracy"] for st in routed]
                ax.plot(xs, ys, style, color=color, lw=0.8, alpha=0.45)
                ax.plot(
                    seed["human_labels"],
                    seed["finished_accuracy"],
                    marker,
                    color=color,
                    ms=9,
                    mec="white",
                    label=f"{prefix}{name}" if j == 0 else None,
                )
            ax.plot(s["human_labels_mean"], s["finished_accuracy_mean"], marker, color=color, ms=15, mfc="none", mew=2)
    ax.axvline(
        finish_simulation.HUMAN_FRACTION_GOAL * n_pool,
        color="grey",
        ls=":",
        lw=1.2,
        label=f"goal: {finish_simulation.HUMAN_FRACTION_GOAL:.0%} of the pool by people",
    )
    ax.set_xlabel(f"human labels (pool of {n_pool})")
    ax.set_ylabel("accuracy of the finished dataset (vs corpus labels)")
    ax.set_xlim(0, n_pool * 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(
        f"Finishing the pool: model {cfg['kind']}, routing target {cfg['target']} (level {cfg['level']}), "
        f"{len(cfg['seeds'])} seeds\nthin lines: finishing at each step with a threshold; "
        f"dots: the stopping rule's finish; rings: means",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def pool_table(rows: list[PoolRow]) -> str:
    lines = [
        f"  {'pool':>7} {'strategy':12} {'batch':>5} {'human frac':>10} {'in loop':>8} {'audit':>12} "
        f"{'oracle':>7} {'floor':>6} {'kept':>5} {'auto acc min':>12}"
    ]
    for r in rows:
        lines.append(
            f"  {r['pool']:7d} {r['strategy']:12} {r['batch']:5d} {r['human_fraction']:10.3f} "
            f"{r['loop_fraction']:8.3f} {r['audit_fraction']:6.3f} ({r['audit_labels']:3.0f}) "
            f"{r['oracle_human_fraction']:7.3f} {r['floor']:6.3f} {r['promise_kept']:5.2f} "
            f"{_fmt(r['auto_accuracy_min']):>12}"
        )
    lines.append("  (human frac = in loop + audit + left below the threshold; oracle: the same finish with a threshold")
    lines.append("   that knew the truth; floor: the fewest any routing could leave with this model)")
    return "\n".join(lines)


def plot_pools(rows: list[PoolRow], path: str | Path, title: str) -> None:
    """Human fraction against pool size per strategy (solid), the oracle at the same finish (dashed) and the floor
    (dotted), the pool on a log axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    palette = [plt.get_cmap("tab10")(i) for i in range(10)]
    for i, name in enumerate(dict.fromkeys(r["strategy"] for r in rows)):
        mine = [r for r in rows if r["strategy"] == name]
        xs = [r["pool"] for r in mine]
        color = palette[i % len(palette)]
        ax.plot(xs, [r["human_fraction"] for r in mine], "o-", color=color, label=f"{name}: audited finish")
        ax.plot(xs, [r["oracle_human_fraction"] for r in mine], "s--", color=color, alpha=0.6, label=f"{name}: oracle")
    floors = {r["pool"]: r["floor"] for r in rows}
    ax.plot(list(floors), list(floors.values()), ":", color="grey", label="floor (this model, any routing)")
    ax.set_xscale("log")
    ax.set_xlabel("pool (tasks to finish)")
    ax.set_ylabel("share of the pool people label")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
