"""Benchmark the backend on each LLM engine, side by side, in one run on this machine.

Engines:
  transformers      the model in the backend's own process (the default, LLM_ENGINE=transformers)
  llama-cpp-python  LLM_ENGINE=openai against llama-cpp-python's OpenAI-compatible server on the same GGUF
  llama.cpp         LLM_ENGINE=openai against llama.cpp's own C++ server (`llama-server`, two slots), when
                    --llama-server-bin names one (it is not part of llama-cpp-python's install)

Every engine serves the same stratified test reviews through /predict under gunicorn, with the same fitted
calibration file, and the table shows speed, memory, quality and agreement with the first engine.
"""

import argparse
import json
import sys
from contextlib import ExitStack
from pathlib import Path

from backend.bench import engines as engine_bench
from backend.bench import evaluation
from backend.cli import Parser, reporting_errors
from backend.dev import llama
from backend.dev.processes import free_port
from backend.errors import LabelloopError
from backend.labelstudio import schema
from backend.llm import weights as models
from backend.paths import DEMO_CONFIG, ROOT
from backend.settings import Settings

ENGINES = ("transformers", "llama-cpp-python", "llama.cpp")


def names(value: str) -> list[str]:
    chosen = [v.strip() for v in value.split(",") if v.strip()]
    unknown = sorted(set(chosen) - set(ENGINES))
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"unknown engine(s) {unknown}; choose from {', '.join(ENGINES)}")
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--engines",
        type=names,
        default=list(ENGINES[:2]),
        help="comma-separated (default: transformers,llama-cpp-python)",
    )
    parser.add_argument(
        "--llama-server-bin", type=Path, help="llama.cpp's llama-server binary, for the llama.cpp engine"
    )
    parser.add_argument("--test-size", type=int, default=200, help="stratified test reviews (default %(default)s)")
    parser.add_argument("--batch", type=int, default=25, help="tasks per /predict request (default %(default)s)")
    parser.add_argument("--top-logprobs", type=int, default=300, help="LLM_SERVER_TOP_LOGPROBS (default %(default)s)")
    parser.add_argument("--concurrency", type=int, default=2, help="LLM_SERVER_CONCURRENCY (default %(default)s)")
    parser.add_argument(
        "--calibration",
        type=Path,
        help="calibration file every engine reads (default: the fitted "
        "one the in-process engine finds in guidelines/calibration/)",
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "artifacts" / "engines.json", help="JSON results (default %(default)s)"
    )
    args = parser.parse_args(argv)
    return reporting_errors(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    if "llama-cpp-python" in args.engines and not llama.available():
        raise llama.LlamaServerError(llama.MISSING_REASON)
    if "llama.cpp" in args.engines and not (args.llama_server_bin and args.llama_server_bin.is_file()):
        raise llama.LlamaServerError("the llama.cpp engine needs --llama-server-bin PATH (llama.cpp's llama-server)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    settings = Settings()
    calibration = args.calibration or settings.calibration_dir / f"sentiment.{models.EMBEDDED_NAME}.json"
    if not calibration.is_file():
        raise LabelloopError("no calibration file; run `make calibrate` or pass --calibration")

    config = DEMO_CONFIG.read_text()
    parsed = schema.parse(config)
    test, _ = evaluation.splits(test_size=args.test_size)
    texts, truth = list(test["text"]), list(test["label"])
    results = {}
    with ExitStack() as stack:
        for name in args.engines:
            env = {"DATA_DIR": str(args.out.parent / f"engines-data-{name}"), "CALIBRATION": str(calibration)}
            server_pid = lambda: None  # noqa: E731
            if name != "transformers":
                binary = args.llama_server_bin if name == "llama.cpp" else None
                server = llama.LlamaServer(free_port(), args.out.parent / f"engines-{name}-server.log", binary=binary)
                url = stack.enter_context(server)
                server_pid = lambda s=server: s.proc.pid  # noqa: E731
                env |= {
                    "LLM_ENGINE": "openai",
                    "LLM_SERVER_URL": url,
                    "LLM_SERVER_TOP_LOGPROBS": str(args.top_logprobs),
                    "LLM_SERVER_CONCURRENCY": str(args.concurrency),
                }
            engine = engine_bench.Engine(name, env, server_pid)
            results[name] = engine_bench.run_engine(engine, texts, config, args.batch, free_port(), args.out.parent)
    table = engine_bench.compare(results, truth, parsed.labels)
    args.out.write_text(
        json.dumps(
            {
                "test_size": len(texts),
                "calibration": calibration.name,
                "top_logprobs": args.top_logprobs,
                "engines": table,
            },
            indent=2,
        )
        + "\n"
    )
    rows = [
        ("reviews/s over HTTP", "reviews_per_s", "{:.2f}"),
        (f"request p50 s (batch {args.batch})", "request_p50_s", "{:.1f}"),
        ("backend peak RSS MB", "backend_peak_rss_mb", "{:.0f}"),
        ("LLM server peak RSS MB", "server_peak_rss_mb", "{:.0f}"),
        ("accuracy", "accuracy", "{:.3f}"),
        ("macro-F1", "macro_f1", "{:.3f}"),
        ("same label as first", "same_label_as_first", "{:.3f}"),
        ("kappa with first", "kappa_with_first", "{:.3f}"),
    ]
    print(f"\n{len(texts)} test reviews, calibration {calibration.name}")
    print(f"{'':28}" + "".join(f"{name:>18}" for name in table))
    for title, key, fmt in rows:
        print(f"{title:28}" + "".join(f"{fmt.format(r[key]):>18}" for r in table.values()))
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
