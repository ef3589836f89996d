"""The results.json each benchmark writes, declared: other tools and the docs read them by key, so a key here is a
contract (add keys, never rename one). The module that builds each is named beside it; mypy checks the keys it
writes, and tests/support/shapes.py checks a written file against its declaration."""

from __future__ import annotations

from typing import Any, TypedDict

# ---------------------------------------------------------------- what every simulation's inputs say of themselves


class ZeroShotPair(TypedDict):
    test: float  # macro-F1 on the test split
    pool: float  # and on the pool (never read by a decision; the pool's labels are the simulated people's)


class InputsSource(TypedDict, total=False):
    """Where a simulation's inputs came from (simulation.Inputs.info, less the label names), copied into each
    results' config."""

    data: str  # the corpus or the team's file
    calibration: str  # the label-free calibration served
    resemblance: float | None  # the pool's resemblance to a matching fitted file's texts
    zero_shot: dict[str, ZeroShotPair]  # the LLM alone under each label-free calibration
    lexicon_macro_f1: float | None  # the rule-based lexicon (VADER) on the test split
    features: list[str]  # the calibration's feature strings
    llm: str
    llm_version: str
    llm_state_layer: int | None
    embeddings: str
    pool_label_counts: dict[str, int]
    test_label_counts: dict[str, int]
    input_seconds: dict[str, float]


class InputsInfo(InputsSource, total=False):
    labels: list[str]


# ---------------------------------------------------------------- labelloop compare-strategies (bench/simulation.py)


class CompareConfig(InputsInfo, total=False):
    pool: int
    test_size: int
    curve_seeds: list[int]
    strategy_seeds: list[int]
    curve_sizes: list[int]
    seed_size: int
    batch: int
    budget: int
    strategies: list[str]
    kinds: list[str]  # the setups compared (--kind)
    target_fraction: float
    labels_to_target_rule: str
    hybrid_weights: dict[str, float]
    hybrid_llm_weights: dict[str, float]
    committee_weights: dict[str, float]


class Taught(TypedDict):
    """The served setup's first model before any label (self_training.teach), as a re-score teaches it."""

    test: float  # macro-F1 on the test split
    pool: float  # on the pool
    recipe: str
    pseudo_labels: int


class ZeroShot(TypedDict):
    macro_f1: float
    calibration: str | None
    by_calibration: dict[str, ZeroShotPair]
    resemblance: float | None
    lexicon_macro_f1: float | None
    taught: Taught | None  # None without hidden states (an API engine) or when the LLM gives one label only


class Curve(TypedDict):
    labels: list[int]
    mean: list[float]  # macro-F1 on the test split after each batch, over seeds
    std: list[float]


class StrategyRuns(TypedDict, total=False):
    """One (setup, strategy)'s runs over seeds."""

    auc: float
    auc_std: float
    auc_per_seed: list[float]
    labels_to_target: float | None  # None unless every seed reached the target
    labels_to_target_per_seed: list[int | None]
    reached: int
    final_f1: float
    curve: Curve
    ratio_to_random: float | None


class SetupBlock(TypedDict, total=False):
    macro_f1_at: dict[str, float]  # labels -> mean macro-F1 after that many random labels
    chosen_at: dict[str, dict[str, int]]  # labels -> {recipe: seeds}, for a setup whose labels choose
    full_pool_macro_f1: float
    target: float
    strategies: dict[str, StrategyRuns]


class CompareResults(TypedDict, total=False):
    config: CompareConfig
    llm_alone_macro_f1: float
    zero_shot: ZeroShot
    served_kind: str | None
    kinds: dict[str, SetupBlock]  # "llm" (the LLM alone: macro_f1_at only) and each setup
    seconds: float
    wall_seconds: float  # the command's, inputs included


# ---------------------------------------------------------------- labelloop simulate-finish (bench/finish_simulation.py)


class FinishConfig(InputsInfo, total=False):
    pool: int
    seeds: list[int]
    strategies: list[str]
    target: float
    level: float
    kind: str  # the setup finished with
    recipe: str
    vectors: str | None
    seed_size: int
    batch: int
    patience: int
    evidence: str
    budget: int
    min_support: int
    stopping_rule: str
    accounting: str


class FinishSeed(TypedDict):
    """One seed's finish (FinishRun.as_dict)."""

    seed: int
    human_labels: int
    human_fraction: float
    labeled_in_loop: int
    below_at_finish: int
    auto_labels: int
    auto_fraction: float
    threshold: float | None
    oof_accuracy: float | None
    lower_bound: float | None
    auto_accuracy: float | None
    finished_accuracy: float
    oracle_auto_labels: int
    audited: int
    stop_reason: str
    steps: list[dict[str, Any]]  # each refit's Step, its fields


class AuditRuns(TypedDict):
    """One audit's finishes of the same loops."""

    human_fraction: float
    audit_labels_mean: float
    promise_kept: float
    auto_accuracy_min: float | None
    nothing_labeled: int


class FinishRuns(TypedDict):
    """One strategy's finishes over seeds (finish_simulation.summarize): the contract's figures first."""

    human_fraction: float
    auto_accuracy_min: float | None
    finished_accuracy_mean: float
    promise_kept: float  # the share of runs whose model-labeled part is truly at or above the target
    audit_labels_mean: float
    human_labels_mean: float
    human_fraction_per_seed: list[float]
    auto_fraction_mean: float
    auto_accuracy_mean: float | None
    auto_accuracy_per_seed: list[float | None]
    finished_accuracy_min: float
    finished_accuracy_per_seed: list[float]
    oracle_human_fraction: float  # what a threshold that knew the truth would leave to people
    audits: dict[str, AuditRuns]
    seeds: list[FinishSeed]


class Ceiling(TypedDict):
    accuracy: float
    auto_fraction_max: float
    human_fraction_floor: float


class Goal(TypedDict, total=False):
    strategy: str
    human_fraction_max: float
    auto_accuracy_min: float
    met: bool | None  # None: the served strategy was not run
    human_fraction_met: bool | None
    auto_accuracy_met: bool | None


class LlmAlone(TypedDict):
    strategies: dict[str, FinishRuns]


class FinishResults(TypedDict, total=False):
    config: FinishConfig
    strategies: dict[str, FinishRuns]
    llm_alone: LlmAlone  # with the baseline
    ceiling: dict[str, Ceiling]  # by model: how much any routing could leave the model
    goal: Goal
    seconds: float
    wall_seconds: float


class PoolRow(TypedDict):
    """One pool and strategy of simulate-finish --pools (OUT/pools.json "rows")."""

    pool: int
    strategy: str
    batch: int
    seeds: int
    human_fraction: float
    loop_fraction: float
    audit_fraction: float
    audit_labels: float
    oracle_human_fraction: float
    promise_kept: float
    auto_accuracy_min: float | None
    floor: float
    seconds: float


class PoolsFile(TypedDict):
    rows: list[PoolRow]
    pools: dict[str, FinishResults]  # each pool's results.json


# ---------------------------------------------------------------- labelloop bench-label-issues (bench/noise.py)


class NoiseConfig(InputsSource, total=False):
    kind: str
    labels: int  # how many labels each seed judges (not the label names)
    rate: float
    seeds: list[int]
    to_neutral: float  # in mode "to_neutral", the share of flips sent to Neutral
    team: dict[str, float]  # annotator -> accuracy
    coverage: float
    filter_by: str


class NoiseRuns(TypedDict, total=False):
    flipped: float
    flagged: float
    precision: float
    recall: float
    f1: float
    f1_min: float
    macro_f1_clean: float
    macro_f1_noisy: float
    macro_f1_cleaned: float
    recovered_fraction: float | None
    seeds: list[dict[str, Any]]  # each seed's noise_run


class Team(TypedDict):
    careless_ranked_last: int  # seeds
    annotator_quality: dict[str, float]
    consensus_accuracy: dict[str, float]
    macro_f1: dict[str, float]
    seeds: list[dict[str, Any]]  # each seed's team_run


class NoiseResults(TypedDict, total=False):
    config: NoiseConfig
    noise: dict[str, NoiseRuns]  # by noise mode
    team: Team
    wall_seconds: float


# ---------------------------------------------------------------- labelloop simulate-questions (bench/question_loop.py)


class QuestionStep(TypedDict):
    labels: int
    macro_f1: dict[str, float]  # by question
    mean: float


class Ranking(TypedDict):
    curve: list[QuestionStep]
    labels_to_target: list[int | None]  # per seed
    labels_to_target_mean: float | None


class QuestionsResults(TypedDict, total=False):
    model: str
    llm_version: str
    config: str  # the labeling config's file name
    llm_pass_seconds: float
    pool: int
    test: int
    seeds: int
    seed_size: int
    batch: int
    budget: int
    strategy: str
    recipe: str
    zero_shot: dict[str, float]  # by question
    full_pool: dict[str, float]  # by question, and "mean"
    target: float
    training_seconds: dict[str, float]
    load_average: float
    rankings: dict[str, Ranking]


# ---------------------------------------------------------------- labelloop bench-cascade (bench/cascade.py)


class CascadePoint(TypedDict):
    """cascade.Point: the cascade at one share of texts sent to the 1.5B."""

    share: float
    pool_macro_f1: float
    test_macro_f1: float
    cost: float  # relative to the 0.5B alone
    after_labels: float | None  # served macro-F1 after cascade.CURVE_LABELS random labels


class CascadeCorpus(TypedDict):
    seconds_per_1000: dict[str, float]
    calibration: dict[str, str]
    pool_rows_read: int
    baselines: dict[str, CascadePoint]  # "0.5b", "1.5b"
    points: list[CascadePoint]


class CascadeResults(TypedDict, total=False):
    student_c: float
    student_alone_pool_macro_f1: dict[str, list[float]]
    corpora: dict[str, CascadeCorpus]
    default_share: float
    rule: str
