"""Time every ranking strategy of backend/ranking/strategies.py on a synthetic pool.

The pool: --n tasks with Dirichlet(--alpha) probabilities over --labels labels, standard normal float32 embeddings
of --dim dimensions and --labeled tasks already labeled (drawn at random). Every strategy is ranked once with
strategies.rank(); k-center greedy then chooses --k tasks. Printed per strategy: seconds (wall clock, one run,
data generation excluded) and, for its top --k tasks, the mean max-probability (low = uncertain tasks chosen) and
the mean cosine distance to the nearest labeled task (high = novel tasks chosen). Target: at most 10 s per strategy
for 100,000 tasks.

examples:
  labelloop bench-ranking
  labelloop bench-ranking --n 20000 --k 200 --diversity-k 200
"""

import argparse
import sys
import time

import numpy as np

from backend.cli import Parser, reporting_errors
from backend.ranking import strategies


def main(argv: list[str] | None = None) -> int:
    ap = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="tasks in the pool (default 100000)")
    ap.add_argument("--labels", type=int, default=3, help="labels (default 3)")
    ap.add_argument("--alpha", type=float, default=0.5, help="Dirichlet concentration of the probs (default 0.5)")
    ap.add_argument("--dim", type=int, default=384, help="embedding dimension (default 384)")
    ap.add_argument("--labeled", type=int, default=1000, help="tasks already labeled (default 1000)")
    ap.add_argument(
        "--k", type=int, default=1000, help="tasks k-center greedy chooses; top-k summarised (default 1000)"
    )
    ap.add_argument("--diversity-k", type=int, default=0, help="rank()'s diversity_k for diversity/hybrid (default 0)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.n < 2 or args.labels < 2 or args.dim < 1 or not 0 <= args.labeled < args.n or args.k < 1:
        ap.error("need --n >= 2, --labels >= 2, --dim >= 1, 0 <= --labeled < --n and --k >= 1")
    return reporting_errors(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:

    rng = np.random.default_rng(args.seed)
    t = time.perf_counter()
    probs = rng.dirichlet([args.alpha] * args.labels, size=args.n)
    emb = rng.standard_normal((args.n, args.dim), dtype=np.float32)
    labeled = rng.choice(args.n, size=args.labeled, replace=False)
    # The LLM's probabilities for disagreement and committee: the model's, pulled towards another Dirichlet draw.
    llm = 0.5 * probs + 0.5 * rng.dirichlet([args.alpha] * args.labels, size=args.n)
    print(
        f"pool: {args.n} tasks × {args.labels} labels (Dirichlet {args.alpha}), embeddings {args.dim}-d float32, "
        f"{args.labeled} labeled; generated in {time.perf_counter() - t:.2f} s"
    )

    # reference figures for the summary columns (not timed)
    conf = probs.max(axis=1)
    novelty = 2.0 * strategies.diversity_utility(emb, labeled)  # cosine distance to the nearest labeled task

    rows = []
    for name in sorted(name for name, s in strategies.REGISTRY.items() if not s.llm_judged):
        t = time.perf_counter()
        u = strategies.rank(
            name, probs, emb, labeled_idx=labeled, seed=args.seed, diversity_k=args.diversity_k, llm_probs=llm
        )
        seconds = time.perf_counter() - t
        top = strategies.select(u, args.k)
        rows.append((name, seconds, top))
    t = time.perf_counter()
    picks = strategies.k_center_greedy(emb, args.k, labeled_idx=labeled, seed=args.seed)
    rows.append((f"k_center_greedy (k={args.k})", time.perf_counter() - t, picks))

    print(f"\n{'strategy':<26} {'seconds':>8}   top-{args.k}: {'mean max p':>10} {'cos dist to labeled':>20}")
    for name, seconds, top in rows:
        print(
            f"{name:<26} {seconds:>8.3f}   {'':>{len(str(args.k)) + 5}} {conf[top].mean():>10.3f} "
            f"{novelty[top].mean():>20.3f}"
        )
    print(f"{'(whole pool)':<26} {'':>8}   {'':>{len(str(args.k)) + 5}} {conf.mean():>10.3f} {novelty.mean():>20.3f}")
    worst = max(seconds for _, seconds, _ in rows)
    print(f"\nslowest: {worst:.2f} s ({'within' if worst <= 10 else 'over'} the 10 s target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
