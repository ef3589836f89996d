"""Simulated finishing of a dataset: how many human labels it takes before the model may label the rest, and how
accurate the finished dataset is, with the corpus labels as the annotators.

The set-up: the pool of `simulation.load_inputs` (a stratified sample of the Rotten Tomatoes corpus) IS the dataset
to finish; no test split is read. The model is the served setup (`simulation.SERVED_SETUP`: the LLM's hidden state
plus its calibrated log-probabilities, the recipe the labels choose, `simulation.SETUPS`), or any other setup there.

One run (`finish_run`), for a strategy and a seed:

1. People label `seed_size` random pool items (the same seed set as `simulation.simulate` for the same seed, so
   strategies are compared on paired runs).
2. Every step: fit the model on the labeled items and predict the whole pool; take out-of-fold probabilities of the
   labeled items (`classifier.out_of_fold`) and choose the routing threshold from them (`routing.choose_threshold`:
   the lowest top-probability whose out-of-fold accuracy has its one-sided lower confidence bound at `level` at or
   above `target`), exactly as the real finish does (evidence "all"; with evidence "seed", only the out-of-fold
   answers of the random seed set count: an audit sample the strategy's picks cannot skew, for comparison).
   "Finishing now" would let the model label every unlabeled item whose top probability reaches the threshold and
   leave the rest (the items "below") to people, so its human cost is HUMAN(step) = labeled so far + unlabeled
   items below the threshold (the whole pool when no threshold passes). HUMAN is known at run time: it reads no
   corpus label the annotators have not given.
3. STOPPING RULE (`STOPPING_RULE`): finish at the first step where
   a. nothing unlabeled is below the threshold (the model can take all the rest), or
   b. HUMAN has not dropped below its lowest value so far for `patience` consecutive batches (labeling more no
      longer lowers the cost of finishing: each batch people label is paid for, and pays off only if retraining
      moves more than that many items above the threshold) AND this step has a threshold. The clock starts at the
      first step with a threshold: before it (too few labels for the bound to pass: at least 59 confident correct
      out-of-fold answers at 0.95/0.95, a few hundred labels in practice) HUMAN is the whole pool and the loop
      labels on. A step without a threshold never finishes on patience: finishing there would leave everything to
      people, which labeling on can only improve on (the threshold does come and go from one step to the next
      when its bound sits near the target), or
   c. the loop has labeled `budget` items.
   Otherwise people label the next `batch` unlabeled items in the strategy's order (ranked with the current
   model's probabilities of the pool, `simulation._rank`) and the loop goes to 2.
   The finish happens at the stopping step itself, with that step's model and threshold, not at the best step
   seen: the batches labeled while waiting out the patience are paid for, as they would be for real.
   With evidence "audit" the finish is audited (`audit`): the labels so far only plan where the model may label
   and how many of those tasks people check (routing.plan_audit); people label that many tasks drawn at random
   from the region, and the threshold comes from a fixed-sequence test on them (routing.fixed_sequence), so the
   promise holds whatever order the loop labeled in. The audited tasks count as human labels. Evidence
   "sequential" labels the same region in random batches until a test by betting passes (routing.sequential_audit,
   valid at any stop); "ppi" tests the fixed audit's sample with a prediction-powered bound instead of
   Clopper-Pearson's (routing.ppi_audit_threshold, asymptotic). Each of these audits (AUDITS) finishes the same loop,
   for a paired comparison (FinishRun.audits; the summary's `audits`).
4. At the finish, people label the items below the threshold, the model labels the rest. Reported per run:
   human_labels = HUMAN at the stopping step, human_fraction = human_labels / pool; auto_accuracy = the accuracy of
   the model's labels (argmax) on the items it labeled, against the corpus labels (None when it labeled nothing);
   finished_accuracy = accuracy of the whole finished pool, where human-labeled items are correct (the annotator IS
   the corpus label), i.e. (human_labels + auto_accuracy * auto_labels) / pool.

The summary (`finish`) per strategy, over seeds: `human_fraction` (mean), `auto_accuracy_min` (lowest over the
seeds in which the model labeled anything; None if it never did), `finished_accuracy_mean`, `promise_kept` (the
share of seeds whose model-labeled part is in truth at or above the target), and per-seed details
with every step's trajectory. The same loop with the LLM alone as the model (its calibrated probabilities, no
training: every human label is held out for it) is the baseline `llm_alone`. `goal` checks the issue's targets
for the served strategy: human_fraction <= HUMAN_FRACTION_GOAL with auto_accuracy_min >= target.

Two figures read the corpus labels to say how much room a routing rule has; no decision of the loop reads them:
each step's `oracle_auto` (the most unlabeled items the step's model could label at `target` TRUE accuracy, from
its most confident down: a threshold that knew the truth; summarised as `oracle_human_fraction`), and `ceiling`
per model (the same on out-of-fold predictions of the whole pool, each item predicted by a model trained on the
other 80%: `human_fraction_floor` is the fewest human labels any routing could leave with this model).
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from backend.bench import simulation
from backend.bench.results import (
    AuditRuns,
    Ceiling,
    FinishResults,
    FinishRuns,
    FinishSeed,
    Goal,
    PoolRow,
)
from backend.errors import LabelloopError
from backend.learning import classifier
from backend.loop import routing
from backend.ranking import strategies

DEFAULT_STRATEGIES = ("random", "margin")
SERVED_STRATEGY = "margin"  # Settings.rank_strategy's default
LLM_ALONE = "llm"  # the baseline model: the LLM's calibrated probabilities, never trained
HUMAN_FRACTION_GOAL = 0.45
SEED_SIZE = 50
BATCH = 50
# Past 5,000 tasks a team labels in rounds of a hundredth of its pool (100 at 10,000, 300 at 30,000): a round of 50
# would refit the model hundreds of times before the loop could stop. Fixed before any pool past 3,000 was run.
BATCH_SHARE = 0.01


def batch_for(pool: int) -> int:
    """The default labels per step for a pool: BATCH, or BATCH_SHARE of a larger pool."""
    return max(BATCH, round(BATCH_SHARE * pool))


PATIENCE = 3
# Which human labels choose the threshold: "all" (as the real finish: every label's out-of-fold answer), "seed"
# (only the random seed set's: a representative sample, which the strategy's picks cannot skew), or "audit" (at the
# finish, a random sample of the tasks the model proposes to label, tested in a fixed sequence: audit()).
EVIDENCE = ("all", "seed", "audit", "sequential", "ppi")
LOADER_TEST_SIZE = 30  # the loader wants a test split; this simulation never reads it
STOPPING_RULE = (
    "label batches in the strategy's order, refit and re-route after each; HUMAN(step) = labeled so far + unlabeled "
    "items below the routing threshold (the whole pool when no threshold passes); finish at the first step where "
    "nothing is below the threshold, or HUMAN has not dropped below its lowest value for `patience` consecutive "
    "batches (counted from the first step with a threshold) and this step has a threshold, or `budget` items are "
    "labeled; at the finish people label the items below the threshold and the model the rest, with that step's "
    "model and threshold"
)
ACCOUNTING = (
    "human_fraction = HUMAN at the finish / pool; auto_accuracy = model argmax vs corpus label on the items the model "
    "labeled (None when it labeled none); finished_accuracy = (human labels + correct model labels) / pool, human "
    "labels counted correct; auto_accuracy_min = lowest over seeds with model labels"
)


class FinishSimulationError(LabelloopError, ValueError):
    """Settings the finishing simulation cannot run with; the message says which and why."""

    http_status = 400


@dataclass
class Step:
    """The state of the loop after one refit: what finishing now would cost and give."""

    labeled: int  # items people have labeled so far
    threshold: float | None  # routing threshold (None: no threshold passes, people label everything)
    support: int  # out-of-fold items at/above the threshold
    oof_accuracy: float | None  # out-of-fold accuracy at/above it, as the router sees it
    lower_bound: float | None
    auto: int  # unlabeled items at/above the threshold: the model would label them
    below: int  # unlabeled items below it: people would label them
    human: int  # labeled + below: the human cost of finishing now
    auto_accuracy: float | None  # the truth (corpus labels) on the `auto` items; never read by the loop
    finished_accuracy: float
    # The most unlabeled items the model could have labeled at `target` true accuracy, taking them from its most
    # confident down (read from the corpus labels, for the report only): how much a perfect threshold would give.
    oracle_auto: int = 0
    audited: int = 0  # random tasks of the proposed region people labeled as the audit (evidence "audit")


@dataclass
class FinishRun:
    strategy: str
    seed: int
    n_pool: int
    steps: list[Step]
    stop_reason: str
    order: np.ndarray = field(repr=False)  # pool rows in the order people labeled them in the loop
    # Every audit's finish (AUDITS) of the same loop, the evidence's among them: paired, for comparing audits.
    audits: dict[str, Step] = field(default_factory=dict)

    @property
    def final(self) -> Step:
        return self.steps[-1]

    def as_dict(self) -> FinishSeed:
        f = self.final
        return {
            "seed": self.seed,
            "human_labels": f.human,
            "human_fraction": f.human / self.n_pool,
            "labeled_in_loop": f.labeled,
            "below_at_finish": f.below,
            "auto_labels": f.auto,
            "auto_fraction": f.auto / self.n_pool,
            "threshold": f.threshold,
            "oof_accuracy": f.oof_accuracy,
            "lower_bound": f.lower_bound,
            "auto_accuracy": f.auto_accuracy,
            "finished_accuracy": f.finished_accuracy,
            "oracle_auto_labels": f.oracle_auto,
            "audited": f.audited,
            "stop_reason": self.stop_reason,
            "steps": [asdict(s) for s in self.steps],
        }


def check_settings(
    n_pool: int, target: float, level: float, seed_size: int, batch: int, patience: int, budget: int
) -> None:
    for name, value in (
        ("seed size", seed_size),
        ("batch", batch),
        ("patience", patience),
        ("budget", budget),
        ("pool", n_pool),
    ):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise FinishSimulationError(f"{name} must be a positive integer, got {value!r}")
    for name, fraction in (("target", target), ("level", level)):
        if not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
            raise FinishSimulationError(f"{name} must lie strictly between 0 and 1, got {fraction!r}")
    if budget > n_pool:
        raise FinishSimulationError(f"budget ({budget}) exceeds the pool ({n_pool} items)")
    if seed_size > budget:
        raise FinishSimulationError(f"seed size ({seed_size}) exceeds the budget ({budget})")


def check_evidence(evidence: str) -> None:
    if evidence not in EVIDENCE:
        raise FinishSimulationError(f"unknown evidence {evidence!r}; choose from {', '.join(EVIDENCE)}")


def check_setup(setup: str) -> None:
    if setup != LLM_ALONE and setup not in simulation.SETUPS:
        raise FinishSimulationError(
            f"unknown model kind {setup!r}; choose from {', '.join(simulation.SETUPS)}, {LLM_ALONE}"
        )


def _model(inputs: simulation.Inputs, setup: str, labeled: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(pool probabilities of the model trained on `labeled`, out-of-fold probabilities of the `labeled` rows)."""
    if setup == LLM_ALONE:
        return inputs.pool_llm, inputs.pool_llm[labeled]  # never trained: every human label is held out for it
    vectors = inputs.vectors(setup)[0]
    v, llm, y = vectors[labeled], inputs.pool_llm[labeled], inputs.pool_y[labeled]
    try:
        model = simulation.fit_setup(setup, v, llm, y, inputs.n_labels, seed=seed, split=inputs.split)
    except classifier.TrainingError:
        # Too few labels to fit: as simulation._fit_predict, a blend serves the LLM alone, a classifier the label
        # shares. Neither learned from the labels, so their predictions of the labeled rows are held out already.
        if simulation.reads_llm(setup):
            pool = inputs.pool_llm
        else:
            prior = np.bincount(y, minlength=inputs.n_labels) + 1.0
            pool = np.tile(prior / prior.sum(), (len(inputs.pool_y), 1))
        return pool, pool[labeled]
    oof = simulation.out_of_fold_setup(setup, v, llm, y, inputs.n_labels, seed=seed, split=inputs.split)
    return model.predict_proba(vectors, inputs.pool_llm), oof


def most_trusted(probs: np.ndarray, y: np.ndarray, target: float) -> int:
    """The most rows, taken from the most confident down, whose true accuracy (against `y`) is at least `target`."""
    order = np.argsort(-probs.max(axis=1), kind="stable")
    hits = np.cumsum(probs[order].argmax(axis=1) == y[order])
    passing = np.flatnonzero(hits >= target * np.arange(1, len(hits) + 1))
    return int(passing[-1] + 1) if passing.size else 0


def ceiling(inputs: simulation.Inputs, setup: str, target: float, seed: int = 0) -> Ceiling:
    """How much of the pool the model could ever take at `target` true accuracy: out-of-fold probabilities of every
    pool item from models trained on the other 80% of the pool (far more labels than any finish has), rows taken
    from the most confident down while their accuracy stays at `target` (read from the corpus labels: a perfect
    threshold). `human_fraction_floor` = 1 - that share: no routing rule does better with this model."""
    if setup == LLM_ALONE:
        probs = inputs.pool_llm
    else:
        probs = simulation.out_of_fold_setup(
            setup,
            inputs.vectors(setup)[0],
            inputs.pool_llm,
            inputs.pool_y,
            inputs.n_labels,
            seed=seed,
            split=inputs.split,
        )
    share = most_trusted(probs, inputs.pool_y, target) / len(inputs.pool_y)
    return {
        "accuracy": float((probs.argmax(axis=1) == inputs.pool_y).mean()),
        "auto_fraction_max": share,
        "human_fraction_floor": 1.0 - share,
    }


def route(
    pool_probs: np.ndarray,
    oof: np.ndarray,
    labeled: np.ndarray,
    pool_y: np.ndarray,
    target: float,
    level: float,
    evidence: int | None = None,
) -> Step:
    """What finishing now would do: the threshold from the out-of-fold predictions of the labeled rows, the
    unlabeled rows the model would label, and (from the corpus labels, for the report only) how right it would be.
    `evidence`: only the first that many labeled rows choose the threshold (EVIDENCE "seed"); None: all of them."""
    n = len(pool_y)
    audit = slice(None) if evidence is None else slice(0, evidence)  # the rows whose out-of-fold answers count
    held, y_held = oof[audit], pool_y[labeled][audit]
    chosen = routing.choose_threshold(held.max(axis=1), held.argmax(axis=1) == y_held, target, level)
    unlabeled = np.ones(n, dtype=bool)
    unlabeled[labeled] = False
    oracle_auto = most_trusted(pool_probs[unlabeled], pool_y[unlabeled], target)
    return _step(pool_probs, pool_y, labeled, chosen, np.zeros(0, dtype=np.int64), oracle_auto)


def _step(
    pool_probs: np.ndarray,
    pool_y: np.ndarray,
    labeled: np.ndarray,
    chosen: routing.Threshold,
    audited: np.ndarray,
    oracle_auto: int,
) -> Step:
    """The finish `chosen` gives: the model labels the unlabeled rows at or above its threshold, bar the audited
    ones; people label the labeled, the audited and the rest."""
    n = len(pool_y)
    unlabeled = np.ones(n, dtype=bool)
    unlabeled[labeled] = False
    auto = np.zeros(n, dtype=bool)
    if chosen.threshold is not None:
        auto = unlabeled & (pool_probs.max(axis=1) >= chosen.threshold)
        auto[audited] = False
    n_auto = int(auto.sum())
    below = int(unlabeled.sum()) - n_auto - len(audited)
    correct = int((pool_probs[auto].argmax(axis=1) == pool_y[auto]).sum())
    human = len(labeled) + len(audited) + below
    return Step(
        labeled=len(labeled),
        threshold=chosen.threshold,
        support=chosen.support,
        oof_accuracy=chosen.accuracy,
        lower_bound=chosen.lower_bound,
        auto=n_auto,
        below=below,
        human=human,
        auto_accuracy=correct / n_auto if n_auto else None,
        finished_accuracy=(human + correct) / n,
        oracle_auto=oracle_auto,
        audited=len(audited),
    )


def _plan(
    pool_probs: np.ndarray, oof: np.ndarray, labeled: np.ndarray, pool_y: np.ndarray, target: float, level: float
) -> tuple[routing.AuditPlan, np.ndarray, np.ndarray]:
    """The audit the labels so far plan (routing.plan_audit), the region's rows, and every row's confidence."""
    unlabeled = np.ones(len(pool_y), dtype=bool)
    unlabeled[labeled] = False
    confidence = pool_probs.max(axis=1)
    plan = routing.plan_audit(
        oof.max(axis=1), oof.argmax(axis=1) == pool_y[labeled], confidence[unlabeled], target, level
    )
    region = np.flatnonzero(unlabeled & (confidence >= plan.region)) if plan.size else np.zeros(0, dtype=np.int64)
    return plan, region, confidence


def _sampled(
    pool_probs: np.ndarray,
    oof: np.ndarray,
    labeled: np.ndarray,
    pool_y: np.ndarray,
    target: float,
    level: float,
    rng: np.random.Generator,
) -> tuple[routing.AuditPlan, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """_plan's, with the fixed audit's sample drawn from the region and whether people's labels agree on it."""
    plan, region, confidence = _plan(pool_probs, oof, labeled, pool_y, target, level)
    sample = rng.choice(region, size=plan.size, replace=False) if plan.size else region
    return plan, region, confidence, sample, pool_probs[sample].argmax(axis=1) == pool_y[sample]


def audit(
    pool_probs: np.ndarray,
    oof: np.ndarray,
    labeled: np.ndarray,
    pool_y: np.ndarray,
    *,
    proposal: Step,
    target: float,
    level: float,
    rng: np.random.Generator,
) -> Step:
    """The finish with a promise valid under any ranking (routing.fixed_sequence): the labels so far plan the audit
    (routing.plan_audit: the region and its size), people label a random sample of the region, the model's answers
    on it are tested from the most confident down, and the model labels the rest of the region above the threshold
    that passed. The audit's labels are people's, counted in `human`."""
    plan, _, confidence, sample, right = _sampled(pool_probs, oof, labeled, pool_y, target, level, rng)
    chosen = routing.audit_threshold(confidence[sample], right, plan.expected, target, level)
    return _step(pool_probs, pool_y, labeled, chosen, sample, proposal.oracle_auto)


def sequential_audit(
    pool_probs: np.ndarray,
    oof: np.ndarray,
    labeled: np.ndarray,
    pool_y: np.ndarray,
    *,
    proposal: Step,
    target: float,
    level: float,
    rng: np.random.Generator,
) -> Step:
    """The same region as `audit`'s, where an audit pays at all; people label its tasks in random order, a batch at
    a time, until the test by betting passes the whole region (routing.sequential_audit), at most
    routing.SEQUENTIAL_MOST times the fixed audit's size and half the region."""
    plan, region, confidence = _plan(pool_probs, oof, labeled, pool_y, target, level)
    most = min(int(np.ceil(routing.SEQUENTIAL_MOST * plan.size)), len(region) // 2)
    drawn = rng.permutation(region)[:most] if plan.size else region
    right = pool_probs[drawn].argmax(axis=1) == pool_y[drawn]  # what people's labels show, batch by batch
    chosen, read = routing.sequential_audit(confidence[region], confidence[drawn], right, plan.expected, target, level)
    return _step(pool_probs, pool_y, labeled, chosen, drawn[:read], proposal.oracle_auto)


def ppi_audit(
    pool_probs: np.ndarray,
    oof: np.ndarray,
    labeled: np.ndarray,
    pool_y: np.ndarray,
    *,
    proposal: Step,
    target: float,
    level: float,
    rng: np.random.Generator,
) -> Step:
    """`audit`'s region and sample (the same draws for the same generator), each threshold's bound by
    prediction-powered inference (routing.ppi_audit_threshold) instead of Clopper-Pearson's."""
    plan, region, confidence, sample, right = _sampled(pool_probs, oof, labeled, pool_y, target, level, rng)
    chosen = routing.ppi_audit_threshold(confidence[region], confidence[sample], right, plan.expected, target, level)
    return _step(pool_probs, pool_y, labeled, chosen, sample, proposal.oracle_auto)


AUDITS = {"audit": audit, "sequential": sequential_audit, "ppi": ppi_audit}  # evidence -> how its finish is audited


def finish_run(
    inputs: simulation.Inputs,
    setup: str,
    strategy: str,
    seed: int,
    *,
    target: float = 0.95,
    level: float = 0.95,
    seed_size: int = SEED_SIZE,
    batch: int = BATCH,
    patience: int = PATIENCE,
    budget: int | None = None,
    evidence: str = "audit",
) -> FinishRun:
    """One finishing run (the module docstring's steps 1-4); deterministic for a given seed."""
    n_pool = len(inputs.pool_y)
    budget = n_pool if budget is None else budget
    check_settings(n_pool, target, level, seed_size, batch, patience, budget)
    check_setup(setup)
    check_evidence(evidence)
    simulation.check_strategies([strategy])
    missing = [v for v in simulation.needed_judges([strategy]) if f"llm_{v}" not in inputs.judged]
    if missing:
        raise FinishSimulationError(
            f"strategy {strategy} needs the LLM judge(s) {', '.join(missing)}, not in the inputs"
        )
    rng = np.random.default_rng(seed)
    order = list(rng.choice(n_pool, size=seed_size, replace=False))  # as simulation.simulate: paired seed sets
    steps: list[Step] = []
    best, since_best = None, 0
    while True:
        labeled = np.array(order, dtype=np.int64)
        pool_probs, oof = _model(inputs, setup, labeled, seed)
        step = route(pool_probs, oof, labeled, inputs.pool_y, target, level, seed_size if evidence == "seed" else None)
        steps.append(step)
        if step.threshold is not None or best is not None:  # the patience clock starts at the first threshold
            if best is None or step.human < best:
                best, since_best = step.human, 0
            else:
                since_best += 1
        if step.below == 0:
            reason = "nothing below the threshold"
            break
        if since_best >= patience and step.threshold is not None:
            reason = f"no lower human cost for {patience} batches"
            break
        if len(order) >= budget:
            reason = "budget"
            break
        u = simulation._rank(strategy, pool_probs, inputs, labeled, seed, batch)
        order.extend(strategies.select(u, min(batch, budget - len(order))).tolist())
    audits = {}
    if evidence in AUDITS:  # every audit on the same loop, each drawing as if it were the only one
        audits = {
            name: audited(
                pool_probs,
                oof,
                labeled,
                inputs.pool_y,
                proposal=steps[-1],
                target=target,
                level=level,
                rng=copy.deepcopy(rng),
            )
            for name, audited in AUDITS.items()
        }
        steps.append(audits[evidence])
    return FinishRun(strategy, seed, n_pool, steps, reason, np.array(order, dtype=np.int64), audits)


def summarize(runs: Sequence[FinishRun], target: float) -> FinishRuns:
    """One strategy's runs over seeds: the contract's figures first, then the rest. `promise_kept`: the share of
    runs whose model-labeled part is in truth at or above `target` (a run where the model labeled nothing keeps it)."""
    n_pool = runs[0].n_pool
    human = np.array([r.final.human for r in runs], dtype=float)
    autos = [r.final.auto_accuracy for r in runs]
    defined = [a for a in autos if a is not None]
    finished = np.array([r.final.finished_accuracy for r in runs])
    return {
        "human_fraction": float(human.mean() / n_pool),
        "auto_accuracy_min": min(defined) if defined else None,
        "finished_accuracy_mean": float(finished.mean()),
        "promise_kept": float(np.mean([a is None or a >= target for a in autos])),
        "audit_labels_mean": float(np.mean([r.final.audited for r in runs])),
        "human_labels_mean": float(human.mean()),
        "human_fraction_per_seed": (human / n_pool).tolist(),
        "auto_fraction_mean": float(np.mean([r.final.auto for r in runs]) / n_pool),
        "auto_accuracy_mean": float(np.mean(defined)) if defined else None,
        "auto_accuracy_per_seed": autos,
        "finished_accuracy_min": float(finished.min()),
        "finished_accuracy_per_seed": finished.tolist(),
        # what a threshold that knew the truth would leave to people at the same finish (report only)
        "oracle_human_fraction": float(np.mean([r.n_pool - r.final.oracle_auto for r in runs]) / n_pool),
        "audits": {name: _audit_summary([r.audits[name] for r in runs], n_pool, target) for name in runs[0].audits},
        "seeds": [r.as_dict() for r in runs],
    }


def _audit_summary(finals: Sequence[Step], n_pool: int, target: float) -> AuditRuns:
    """One audit's finishes of the same runs (FinishRun.audits): its price and whether it kept the promise."""
    autos = [f.auto_accuracy for f in finals]
    defined = [a for a in autos if a is not None]
    return {
        "human_fraction": float(np.mean([f.human for f in finals]) / n_pool),
        "audit_labels_mean": float(np.mean([f.audited for f in finals])),
        "promise_kept": float(np.mean([a is None or a >= target for a in autos])),
        "auto_accuracy_min": min(defined) if defined else None,
        "nothing_labeled": sum(f.auto == 0 for f in finals),
    }


def finish(
    inputs: simulation.Inputs,
    strategy_names: Sequence[str] = DEFAULT_STRATEGIES,
    seeds: Sequence[int] = range(3),
    *,
    target: float = 0.95,
    level: float = 0.95,
    setup: str = simulation.SERVED_SETUP,
    seed_size: int = SEED_SIZE,
    batch: int = BATCH,
    patience: int = PATIENCE,
    budget: int | None = None,
    evidence: str = "audit",
    baseline: bool = True,
    progress: bool = True,
) -> FinishResults:
    """Every strategy's finishing runs over `seeds` with the setup `setup` (and, with `baseline`, with the LLM
    alone), summarised as the results.json the script writes."""
    simulation.check_strategies(list(strategy_names))
    check_setup(setup)
    check_evidence(evidence)
    seeds = list(seeds)
    if not seeds:
        raise FinishSimulationError("no seed given")
    n_pool = len(inputs.pool_y)
    budget = n_pool if budget is None else budget
    check_settings(n_pool, target, level, seed_size, batch, patience, budget)
    started = time.perf_counter()
    chosen = simulation.SETUPS.get(setup)
    recipe, vectors = (chosen.learner, chosen.vectors) if chosen else (LLM_ALONE, None)
    results: FinishResults = {
        "config": {
            "pool": n_pool,
            "seeds": seeds,
            "strategies": list(strategy_names),
            "target": target,
            "level": level,
            "kind": setup,
            "recipe": recipe,
            "vectors": vectors,
            "seed_size": seed_size,
            "batch": batch,
            "patience": patience,
            "evidence": evidence,
            "budget": budget,
            "min_support": routing.MIN_SUPPORT,
            "stopping_rule": STOPPING_RULE,
            "accounting": ACCOUNTING,
            **inputs.info,
        },
    }
    models = [setup] + ([LLM_ALONE] if baseline and setup != LLM_ALONE else [])
    bar = tqdm(total=len(models) * len(strategy_names) * len(seeds), desc="finishing", unit="run", disable=not progress)
    blocks = {}
    for model in models:
        by_strategy = {}
        for name in strategy_names:
            runs = []
            for seed in seeds:
                bar.set_postfix_str(f"{model} {name} seed {seed}")
                runs.append(
                    finish_run(
                        inputs,
                        model,
                        name,
                        seed,
                        target=target,
                        level=level,
                        seed_size=seed_size,
                        batch=batch,
                        patience=patience,
                        budget=budget,
                        evidence=evidence,
                    )
                )
                bar.update()
            by_strategy[name] = summarize(runs, target)
        blocks[model] = by_strategy
    bar.close()
    results["strategies"] = blocks[setup]
    if LLM_ALONE in blocks and setup != LLM_ALONE:
        results["llm_alone"] = {"strategies": blocks[LLM_ALONE]}
    # Reads every corpus label: for the report only, never for a decision of the loop.
    results["ceiling"] = {model: ceiling(inputs, model, target) for model in models}
    results["goal"] = goal(results["strategies"], target)
    results["seconds"] = round(time.perf_counter() - started, 1)
    return results


def goal(by_strategy: dict[str, FinishRuns], target: float) -> Goal:
    """The issue's targets for the served strategy: human_fraction <= HUMAN_FRACTION_GOAL, auto_accuracy_min >=
    target. `met` is None when the served strategy was not run."""
    out: Goal = {
        "strategy": SERVED_STRATEGY,
        "human_fraction_max": HUMAN_FRACTION_GOAL,
        "auto_accuracy_min": target,
    }
    s = by_strategy.get(SERVED_STRATEGY)
    if s is None:
        out.update({"met": None, "human_fraction_met": None, "auto_accuracy_met": None})
        return out
    hf_met = s["human_fraction"] <= HUMAN_FRACTION_GOAL
    acc_met = s["auto_accuracy_min"] is not None and s["auto_accuracy_min"] >= target
    out.update(
        {"met": bool(hf_met and acc_met), "human_fraction_met": bool(hf_met), "auto_accuracy_met": bool(acc_met)}
    )
    return out


# ---------------------------------------------------------------------------------------------------------------
# against pool size


def pool_rows(by_pool: dict[int, FinishResults]) -> list[PoolRow]:
    """One row per pool and strategy: what the finish cost (human fraction), its parts (labels in the loop, the
    audit) and the oracle's figure at the same finish, with the promise kept."""
    rows: list[PoolRow] = []
    for pool, results in sorted(by_pool.items()):
        for name, s in results["strategies"].items():
            loop = float(np.mean([seed["labeled_in_loop"] for seed in s["seeds"]]))
            rows.append(
                {
                    "pool": pool,
                    "strategy": name,
                    "batch": results["config"]["batch"],
                    "seeds": len(s["seeds"]),
                    "human_fraction": s["human_fraction"],
                    "loop_fraction": loop / pool,
                    "audit_fraction": s["audit_labels_mean"] / pool,
                    "audit_labels": s["audit_labels_mean"],
                    "oracle_human_fraction": s["oracle_human_fraction"],
                    "promise_kept": s["promise_kept"],
                    "auto_accuracy_min": s["auto_accuracy_min"],
                    "floor": results["ceiling"][results["config"]["kind"]]["human_fraction_floor"],
                    "seconds": results["seconds"],
                }
            )
    return rows
