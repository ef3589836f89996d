"""Synthetic examples: write them with the local Qwen model, filter them, measure them, review them in Label Studio.

  sample    a small real labeled sample of the Rotten Tomatoes corpus, disjoint from the evaluation's test split
  generate  candidates from the real examples (conditional, paraphrase, style, minority); resumable JSONL
  filter    format, length, duplicates (exact, ROUGE-L, embeddings) and label checks; every rejection has a reason
  report    diversity and label balance (intrinsic), and F1 with vs without the accepted examples (extrinsic)
  import    the accepted examples into a Label Studio project as synthetic tasks, the intended label as prediction
  review    accept / edit / reject rates of the synthetic tasks in a Label Studio JSON export

Bad input exits 2 with one "error:" line. The model is the backend's (LLM_MODEL, default the packaged Qwen2.5-Coder-
0.5B-Instruct); Label Studio is reached at LABEL_STUDIO_URL with LABEL_STUDIO_API_KEY.

examples:
  labelloop synthetic sample --size 150 --out real.csv
  labelloop synthetic generate --real real.csv --out candidates.jsonl --mix conditional=20,minority=40
  labelloop synthetic filter candidates.jsonl --real real.csv --out filtered.jsonl
  labelloop synthetic report filtered.jsonl --real real.csv --kinds classifier,blend --plot synthetic.png
  labelloop synthetic import filtered.jsonl --title "Movie reviews: synthetic review"
  labelloop synthetic review export.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from backend.cli import Parser, reporting_errors
from backend.files import write_atomically
from backend.paths import DEMO_CONFIG
from backend.synthetic import generate as syn

DEFAULT_CACHE = Path.home() / ".cache" / "labelloop" / "synthetic"


# Short forms of the module docstrings (importing the modules for --help would load rouge-score and nltk).
FILTER_HELP = """Every candidate gets filter.status (accepted or rejected), and a rejected one its first failed check:

  format               empty, cut off at the token budget, an echo of the prompt's instructions, chat leftovers
                       ("Here is the paraphrase"), Markdown, a label tag ("Positive:"), letters outside the Latin
                       script, another language than --language (texts of 8 words or more)
  length               fewer than --min-words or more than --max-words words
  duplicate-exact      the same text (after normalising case and spaces) as a real text, a gold item, a guidelines
                       example, or a candidate accepted before it
  duplicate-rouge      ROUGE-L F1 >= --rouge with one of those (Self-Instruct's rule, Google's rouge-score)
  duplicate-embedding  sentence-embedding cosine >= --cosine with one of those
  label-llm            the LLM's calibrated probability of the intended label < --llm-threshold
  label-classifier     a classifier trained on the real labels gives it less than it gives 90% (--classifier-
                       quantile) of the real texts of that label, cross-validated
"""
REPORT_HELP = """Intrinsic: tokens per example, distinct-1/2 and unique bigrams per example of the real and the accepted
synthetic texts at the same size (DataTune's diversity table), overall and per label; label balance; outcomes by
reason and by mode. Extrinsic: the classifier trained on the real sample with and without the accepted synthetic
examples, macro-F1 and the rarest label's F1 on the evaluation's fixed 600-item test split; --resamples more corpus
samples of the same size show how much of a difference is luck.
"""


def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _schema(path: Path):
    from backend.labelstudio import schema as schemas

    try:
        return schemas.parse_single(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise syn.SyntheticError(f"cannot read labeling config {path}: {e.strerror or e}") from None


def _predictor(threads: int | None = None):
    import torch

    from backend.serving.service import load_predictor
    from backend.settings import Settings

    if threads:
        torch.set_num_threads(threads)
    _note("loading the model (about 10 s)")
    return load_predictor(Settings.from_env())


def _embedder(cache_dir: Path):
    from backend.learning.embeddings import Embedder

    embedder = Embedder(cache_dir / "embeddings.npz")

    def embed(texts: list[str]):
        vectors = embedder.encode(texts)
        embedder.save()
        return vectors

    return embed


def _read_filtered(path: Path) -> list[dict]:
    items = syn.read_candidates(path)
    if not items:
        raise syn.SyntheticError(f"{path} holds no synthetic items")
    if any(not isinstance(i.get("filter"), dict) for i in items):
        raise syn.SyntheticError(f"{path} has items without a filter verdict; run `filter` on it first")
    return items


def _write_jsonl(path: Path, items: list[dict]) -> None:

    try:
        write_atomically(path, lambda f: f.writelines(json.dumps(i, ensure_ascii=False) + "\n" for i in items))
    except OSError as e:
        raise syn.SyntheticError(f"cannot write {path}: {e.strerror or e}") from None


# ---------------------------------------------------------------- commands


def cmd_sample(args: argparse.Namespace) -> int:

    sample = syn.corpus_sample(args.size, args.seed)
    try:
        write_atomically(args.out, lambda f: sample.to_csv(f, index=False))
    except OSError as e:
        raise syn.SyntheticError(f"cannot write {args.out}: {e.strerror or e}") from None
    counts = ", ".join(f"{k} {v}" for k, v in sample["label"].value_counts().items())
    _note(
        f"wrote {args.out}: {len(sample)} corpus texts ({counts}), none in the evaluation's test or calibration split"
    )
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    schema = _schema(args.config)
    real = syn.load_real(args.real, schema)
    mix = syn.parse_mix(args.mix)
    sampling = syn.Sampling(args.temperature, args.top_p, args.max_new_tokens, args.batch_size)
    sampling.check()
    if args.max_minutes is not None and args.max_minutes <= 0:
        raise syn.SyntheticError(f"--max-minutes must be positive, got {args.max_minutes}")
    predictor = _predictor(args.threads)
    result = syn.generate(
        predictor,
        real,
        args.out,
        mix=mix,
        seed=args.seed,
        sampling=sampling,
        max_minutes=args.max_minutes,
        labels=schema.labels,
        progress=not args.quiet,
    )
    _note(
        f"{args.out}: {result.total} of {result.planned} planned candidates ({result.written} written now, "
        f"{result.seconds:.0f} s)"
    )
    if result.stopped_by_time:
        _note(f"stopped at the {args.max_minutes:g}-minute limit; run the same command again to continue")
    return 0


def cmd_filter(args: argparse.Namespace) -> int:
    from backend.synthetic import filters as sf

    schema = _schema(args.config)
    items = syn.read_candidates(args.candidates)
    if not items:
        raise syn.SyntheticError(f"{args.candidates} holds no candidates (or does not exist)")
    real = syn.load_real(args.real, schema)
    lang = args.language
    if lang == "auto":
        lang = sf.main_language(real["text"])
    elif lang == "any":
        lang = None
    config = sf.FilterConfig(
        args.rouge, args.cosine, args.llm_threshold, args.classifier_quantile, args.min_words, args.max_words, lang
    )
    try:
        config.check()
    except ValueError as e:
        raise syn.SyntheticError(str(e)) from None
    embed = _embedder(args.cache_dir)
    predictor = None if args.no_llm else _predictor(args.threads)
    llm = sf.cached_llm_probs(predictor, schema, args.cache_dir) if predictor else None
    clf = (
        None
        if args.no_classifier
        else sf.real_classifier(real["text"], real["label"], schema.labels, embed, args.classifier_quantile)
    )
    if clf is None and not args.no_classifier:
        _note("note: the classifier check is skipped: the real data has too few labels to train one")
    reference = sf.reference_texts(real["text"].tolist(), guidelines=predictor.guidelines if predictor else None)
    out = sf.run_filters(
        items, reference, schema.labels, embed, llm_probs=llm, classifier=clf, config=config, progress=_note
    )
    if clf:
        _note(f"classifier thresholds: {clf.thresholds}")
    for item in out:
        item["filter"]["config"] = {**asdict(config), "classifier_thresholds": clf.thresholds if clf else None}
        item["filter"]["checks"] = [c for c, on in (("llm", llm), ("classifier", clf)) if on]
    _write_jsonl(args.out, out)
    accepted = sum(i["filter"]["status"] == "accepted" for i in out)
    reasons = {}
    for item in out:
        if item["filter"]["reason"]:
            reasons[item["filter"]["reason"]] = reasons.get(item["filter"]["reason"], 0) + 1
    why = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])) or "none"
    _note(f"{args.out}: {accepted} of {len(out)} accepted; rejected: {why}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from backend.learning import classifier
    from backend.synthetic import filters as sf
    from backend.synthetic import report as sr

    schema = _schema(args.config)
    items = _read_filtered(args.filtered)
    real = syn.load_real(args.real, schema)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    bad = [k for k in kinds if k not in tuple(classifier.LEARNERS)]
    if bad or not kinds:
        raise syn.SyntheticError(f"--kinds {args.kinds!r}: use one or both of {', '.join(tuple(classifier.LEARNERS))}")
    if args.resamples < 0:
        raise syn.SyntheticError(f"--resamples must be 0 or more, got {args.resamples}")
    report = {"intrinsic": sr.intrinsic(real, items, schema.labels)}
    if not args.no_extrinsic:
        started = time.monotonic()
        embed = _embedder(args.cache_dir)
        llm = sf.cached_llm_probs(_predictor(args.threads), schema, args.cache_dir) if "blend" in kinds else None
        accepted = [i for i in items if i["filter"]["status"] == "accepted"]
        report["extrinsic"] = sr.extrinsic(
            real, accepted, schema.labels, embed, llm, kinds=kinds, resamples=args.resamples, progress=_note
        )
        report["extrinsic"]["seconds"] = round(time.monotonic() - started, 1)
    print(sr.markdown(report))
    if args.json:
        _write_json(args.json, report)
    if args.plot:
        sr.plot(report, args.plot)
        _note(f"wrote {args.plot}")
    return 0


def _write_json(path: Path, payload: dict) -> None:

    try:
        write_atomically(path, lambda f: json.dump(payload, f, indent=1, ensure_ascii=False))
    except OSError as e:
        raise syn.SyntheticError(f"cannot write {path}: {e.strerror or e}") from None


def cmd_import(args: argparse.Namespace) -> int:
    from backend.labelstudio import schema as schemas
    from backend.labelstudio import sync
    from backend.labelstudio.client import connect

    items = _read_filtered(args.filtered)
    ls = connect()
    if args.project is None:
        args.project = sync.ensure_project(ls.client, args.title, args.config, args.guidelines).id
    project = sync.get_project(ls.client, args.project)
    try:
        schema = schemas.parse_single(project.label_config or "")
    except schemas.SchemaError as e:
        raise syn.SyntheticError(f"project {args.project}: {e}") from None
    tasks = syn.label_studio_tasks(items, schema)
    if not tasks:
        raise syn.SyntheticError(f"{args.filtered} has no accepted items to import")
    result = sync.import_tasks(ls.client, args.project, tasks, progress=not args.quiet)
    print(f"project {args.project}: imported {result.imported} synthetic tasks, skipped {result.skipped} already there")
    version = sync.get_project(ls.client, args.project).model_version
    if version != syn.PREDICTION_VERSION:
        # Label Studio pre-fills a task only with predictions of the project's model_version.
        _note(
            f"warning: project {args.project} shows predictions of model_version {version!r}, so the intended "
            f"labels ({syn.PREDICTION_VERSION!r}) are not pre-filled; review synthetic tasks in a project of "
            "their own (--title)"
        )
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    from backend.synthetic import report as sr

    schema = _schema(args.config)
    try:
        tasks = json.loads(args.export.read_text(encoding="utf-8"))
    except OSError as e:
        raise syn.SyntheticError(f"cannot read {args.export}: {e.strerror or e}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise syn.SyntheticError(f"{args.export} is not a Label Studio JSON export ({e})") from None
    review = sr.review_rates(tasks, schema)
    if args.format == "json":
        print(json.dumps(review, indent=1))
    else:
        print(sr.markdown({"review": review}))
    if not review["synthetic_tasks"]:
        _note(f"note: {args.export} holds no synthetic tasks (data.synthetic true)")
    return 0


# ---------------------------------------------------------------- arguments


def _parser() -> argparse.ArgumentParser:
    from backend.guidelines import DEFAULT_GUIDELINES

    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help: str, description: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name, help=help, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        sub.add_argument(
            "--config",
            type=Path,
            default=DEMO_CONFIG,
            metavar="FILE",
            help="labeling config whose <Choices> are the labels (default label_config/sentiment.xml)",
        )
        return sub

    sample = command(
        "sample",
        "write a small real labeled sample of the corpus",
        "A stratified sample of the Rotten Tomatoes corpus (text,label CSV), disjoint from the fixed test "
        "and calibration splits, to stand in for a project's first annotations.\n\n"
        "example:\n  labelloop synthetic sample --size 150 --seed 0 --out real.csv",
    )
    sample.add_argument("--size", type=int, default=150, help="texts, e.g. --size 200 (default %(default)s)")
    sample.add_argument("--seed", type=int, default=0, help="sampling seed (default %(default)s)")
    sample.add_argument("--out", type=Path, required=True, metavar="FILE.csv", help="where to write, e.g. real.csv")
    sample.set_defaults(run=cmd_sample)

    real_help = (
        "the real labeled examples: CSV/JSONL with text,label columns, or a Label Studio JSON export "
        "(labels resolved as training does; gold and synthetic tasks left out), e.g. --real real.csv"
    )

    gen = command(
        "generate",
        "write candidates with the Qwen model (resumable)",
        syn.__doc__ + "\nexamples:\n"
        "  labelloop synthetic generate --real real.csv --out candidates.jsonl\n"
        "  labelloop synthetic generate --real export.json --out c.jsonl --mix minority=60 "
        "--max-minutes 10",
    )
    gen.add_argument("--real", type=Path, required=True, metavar="FILE", help=real_help)
    gen.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="FILE.jsonl",
        help="candidates, appended batch by batch; run again to continue an interrupted run",
    )
    gen.add_argument(
        "--mix",
        default=",".join(f"{k}={v}" for k, v in syn.DEFAULT_MIX.items()),
        metavar="MODE=N,...",
        help=f"how many candidates of each mode ({', '.join(syn.MODES)}) (default %(default)s)",
    )
    gen.add_argument("--seed", type=int, default=0, help="fixes the plan and the sampling (default %(default)s)")
    gen.add_argument(
        "--temperature", type=float, default=syn.Sampling.temperature, help="sampling temperature (default %(default)s)"
    )
    gen.add_argument("--top-p", type=float, default=syn.Sampling.top_p, help="nucleus sampling (default %(default)s)")
    gen.add_argument(
        "--max-new-tokens",
        type=int,
        default=syn.Sampling.max_new_tokens,
        help="token budget per text; a label's budget is twice its real texts' 90th percentile up to "
        "this, and longer real texts are not used in prompts (default %(default)s)",
    )
    gen.add_argument(
        "--batch-size", type=int, default=syn.Sampling.batch_size, help="texts generated together (default %(default)s)"
    )
    gen.add_argument(
        "--max-minutes",
        type=float,
        metavar="M",
        help="start no batch after M minutes; the file stays valid and the next run continues",
    )
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    gen.set_defaults(run=cmd_generate)

    filt = command(
        "filter",
        "keep the good candidates; every rejection says why",
        FILTER_HELP + "\nexample:\n  labelloop synthetic filter candidates.jsonl --real real.csv --out filtered.jsonl",
    )
    filt.add_argument("candidates", type=Path, metavar="CANDIDATES.jsonl", help="the output of generate")
    filt.add_argument("--real", type=Path, required=True, metavar="FILE", help=real_help)
    filt.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="FILE.jsonl",
        help="every candidate with its verdict: filter.status, reason, detail, scores",
    )
    filt.add_argument("--rouge", type=float, default=0.7, help="reject at ROUGE-L F1 >= this (default %(default)s)")
    filt.add_argument(
        "--cosine", type=float, default=0.9, help="reject at embedding cosine >= this (default %(default)s)"
    )
    filt.add_argument(
        "--llm-threshold",
        type=float,
        default=0.5,
        help="the LLM's probability of the intended label must reach this (default %(default)s)",
    )
    filt.add_argument(
        "--classifier-quantile",
        type=float,
        default=0.1,
        metavar="Q",
        help="the classifier's probability of the intended label must reach the Q quantile of what it "
        "gives real texts of that label, cross-validated (default %(default)s)",
    )
    filt.add_argument("--min-words", type=int, default=4, help="default %(default)s")
    filt.add_argument("--max-words", type=int, default=300, help="default %(default)s")
    filt.add_argument(
        "--language",
        default="auto",
        metavar="CODE",
        help="the language texts must be in (ISO 639-1, e.g. en); auto: the real texts' main language; "
        "any: no check (default %(default)s)",
    )
    filt.add_argument("--no-llm", action="store_true", help="skip the LLM label check (no model loaded)")
    filt.add_argument("--no-classifier", action="store_true", help="skip the classifier label check")
    filt.add_argument(
        "--cache-dir",
        type=Path,
        default=DEFAULT_CACHE,
        metavar="DIR",
        help="embeddings and LLM scores cached per text (default ~/.cache/labelloop/synthetic)",
    )
    filt.set_defaults(run=cmd_filter)

    rep = command(
        "report",
        "intrinsic and extrinsic report of a filtered set",
        REPORT_HELP + "\nexample:\n"
        "  labelloop synthetic report filtered.jsonl --real real.csv --kinds classifier,blend "
        "--resamples 4 --json report.json --plot synthetic.png",
    )
    rep.add_argument("filtered", type=Path, metavar="FILTERED.jsonl", help="the output of filter")
    rep.add_argument(
        "--real",
        type=Path,
        required=True,
        metavar="FILE",
        help="the real training sample (corpus texts outside the test split), e.g. real.csv",
    )
    rep.add_argument(
        "--kinds",
        default="classifier",
        metavar="KIND,...",
        help="classifier kinds to train: classifier, blend (blend loads the LLM) (default %(default)s)",
    )
    rep.add_argument(
        "--resamples",
        type=int,
        default=2,
        metavar="K",
        help="also train on K other corpus samples of the same size (default %(default)s)",
    )
    rep.add_argument("--no-extrinsic", action="store_true", help="only the intrinsic report (no training)")
    rep.add_argument("--json", type=Path, metavar="FILE", help="also write the whole report as JSON")
    rep.add_argument("--plot", type=Path, metavar="FILE.png", help="also draw outcomes and F1 with vs without")
    rep.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, metavar="DIR", help="as for filter")
    rep.set_defaults(run=cmd_report)
    for sub in (gen, filt, rep):
        sub.add_argument(
            "--threads",
            type=int,
            metavar="N",
            help="torch threads (default: torch's choice); on a machine busy with other work, 1 can be "
            "several times faster than threads that wait for each other",
        )

    imp = command(
        "import",
        "import the accepted items into Label Studio as synthetic tasks",
        "Each accepted item becomes a task whose data holds the text, synthetic: true and provenance (model, "
        "mode, prompt, sampling parameters and seed, intended label, guidelines version, filter scores), "
        f"with the intended label as a prediction (model_version {syn.PREDICTION_VERSION!r}), so annotators "
        "verify instead of writing. Label Studio pre-fills only predictions of the project's model_version: "
        "import into a project of their own (--title) to see the intended labels. Running it again imports "
        "nothing twice.\n\nexample:\n"
        '  labelloop synthetic import filtered.jsonl --title "Movie reviews: synthetic review"',
    )
    imp.add_argument("filtered", type=Path, metavar="FILTERED.jsonl", help="the output of filter")
    where = imp.add_mutually_exclusive_group(required=True)
    where.add_argument("--project", type=int, metavar="ID", help="an existing project")
    where.add_argument("--title", help="create (or reuse) the project with this title, config and guidelines")
    imp.add_argument(
        "--guidelines",
        type=Path,
        default=DEFAULT_GUIDELINES,
        metavar="FILE",
        help="guidelines shown in a project made by --title (default guidelines/sentiment.md)",
    )
    imp.add_argument("--quiet", action="store_true", help="no progress bar")
    imp.set_defaults(run=cmd_import)

    rev = command(
        "review",
        "accept / edit / reject rates of synthetic tasks from an export",
        "Reads a Label Studio JSON export. A reviewed synthetic task is accepted when its label (resolved "
        "as training resolves labels) is the intended one, edited when annotators chose another, rejected "
        "when every annotation was skipped (cancelled). Non-synthetic tasks are ignored.\n\nexample:\n"
        "  labelloop synthetic review export.json --format json",
    )
    rev.add_argument("export", type=Path, metavar="EXPORT.json", help="a Label Studio JSON export")
    rev.add_argument("--format", choices=("table", "json"), default="table", help="default %(default)s")
    rev.set_defaults(run=cmd_review)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return reporting_errors(lambda: args.run(args), status=2)  # its errors have always exited 2


if __name__ == "__main__":
    sys.exit(main())
