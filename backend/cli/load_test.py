"""Load-test the backend: concurrent clients mixing /predict batches (1-50 new reviews each) and webhooks.

Without --url it starts the backend as `make serve` does (gunicorn, the default model) on a free port of
127.0.0.1 and stops it afterwards. Prints throughput, latency percentiles per route, errors, answers beyond Label
Studio's 100 s predict timeout and the worker's memory over the run; --plot writes latency and memory over time.
Exit 1 if any request failed (5xx or no answer) or an answer came after 100 s.

examples:
  labelloop load-test                       # 16 clients, 60 s
  labelloop load-test --clients 4 --seconds 20 --plot load.png
  labelloop load-test --url http://127.0.0.1:9090
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from backend.bench import load as load_test
from backend.cli import Parser, reporting_errors
from backend.dev.demo import BackendProcess
from backend.dev.processes import free_port, worker_pids


def _positive(kind):
    def parse(value: str):
        number = kind(value)
        if number <= 0:
            raise argparse.ArgumentTypeError("must be positive")
        return number

    return parse


def main(argv: list[str] | None = None) -> int:
    ap = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="a running backend (default: start one)")
    ap.add_argument("--clients", type=_positive(int), default=16, help="concurrent clients (default 16)")
    ap.add_argument("--seconds", type=_positive(float), default=60.0, help="how long to send (default 60)")
    ap.add_argument("--max-batch", type=_positive(int), default=50, help="largest /predict batch (default 50)")
    ap.add_argument("--json", type=Path, help="also write the summary here")
    ap.add_argument("--plot", type=Path, help="write latency and memory over time as a PNG")
    args = ap.parse_args(argv)
    return reporting_errors(lambda: _run(args), status=2)  # its errors have always exited 2


def _run(args: argparse.Namespace) -> int:
    auth = (os.environ["BASIC_AUTH_USER"], os.environ["BASIC_AUTH_PASS"]) if os.environ.get("BASIC_AUTH_USER") else None

    backend = None
    try:
        if args.url:
            url, pid = args.url.rstrip("/"), None
        else:
            backend = BackendProcess(free_port(), Path(tempfile.mkdtemp(prefix="labelloop-load-")))
            backend.launch()
            while not backend.poll_ready():
                time.sleep(1)
            url, pid = backend.url, worker_pids(backend.pid)[0]  # gunicorn_conf runs one worker
            print(f"backend ready in {backend.ready_seconds:.1f} s at {url} (log: {backend.log_path})", file=sys.stderr)
        result = load_test.run(
            url, clients=args.clients, seconds=args.seconds, max_batch=args.max_batch, pid=pid, auth=auth
        )
    finally:
        if backend:
            backend.stop()
    summary = result.summary()
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    if args.plot:
        load_test.plot(result, args.plot)
    failed = any(isinstance(v, dict) and (v.get("errors") or v.get("over_100s")) for v in summary.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
