"""What the commands share: the runner every command's work goes through (reporting_errors: one `error:` line for
any LabelloopError and for Label Studio's or the network's errors, a traceback only for a bug), a parser whose errors
are one line, and argument types that say what is wrong with a value."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage block: the message says what to fix
        self.exit(2, f"error: {message} (see --help)\n")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be a positive integer")
    return value


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{value} must lie strictly between 0 and 1")
    return value


def names(text: str) -> list[str]:
    """A comma-separated list, blanks dropped."""
    return [n.strip() for n in text.split(",") if n.strip()]


def check_writable_dir(path: Path) -> None:
    """Make the output directory and prove it takes a file, before hours of work are spent on what goes there;
    OSError if it cannot."""
    path.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
        pass


def reporting_errors(
    run: Callable[[], int],
    expected: tuple[type[BaseException], ...] = (),
    status: int = 1,
    usage: tuple[type[BaseException], ...] = (),
) -> int:
    """run()'s exit status. A LabelloopError, an `expected` error, or Label Studio's or the network's is one `error:`
    line and exits `status` (1; 2 where a command's errors have always meant bad input); a `usage` error is answered
    as the parser answers a bad argument (exit 2). Ctrl-C exits 130. Any other exception is a bug and keeps its
    traceback."""
    from backend.errors import LabelloopError
    from backend.labelstudio.client import TRANSPORT_ERRORS, error_line

    try:
        return run()
    except usage as e:
        print(f"error: {e} (see --help)", file=sys.stderr)
        return 2
    except (LabelloopError, *expected) as e:
        message = str(e).splitlines()[0] if str(e) else repr(e)  # some carry a log's tail on later lines
    except TRANSPORT_ERRORS as e:
        message = error_line(e)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(f"error: {message}", file=sys.stderr)
    return status


def load_model(settings: Any) -> Any:
    """The LLM for a command, loaded now (torch only once a model is needed); a failure is one line."""
    from backend.llm.weights import ModelSourceError
    from backend.serving.service import load_predictor

    print("loading the model ...", file=sys.stderr)
    try:
        return load_predictor(settings)
    except Exception as e:  # whatever the engine raises, the user gets one line
        raise ModelSourceError(f"the model failed to load: {str(e).splitlines()[0] if str(e) else e!r}") from None


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """--data / --corpus / --config / --guidelines: run on a team's labeled file or a packaged corpus instead of the
    bundled Rotten Tomatoes reviews."""
    group = parser.add_argument_group("data (default: the bundled Rotten Tomatoes reviews)")
    group.add_argument(
        "--data",
        type=Path,
        metavar="FILE",
        help="a labeled file: CSV/TSV or JSONL with text and label columns, or a Label Studio JSON "
        "export; labels must be the config's (any case)",
    )
    group.add_argument(
        "--corpus", metavar="NAME", help="a public corpus installed by `make corpora`: posts, r8 or rotten_tomatoes"
    )
    group.add_argument(
        "--config",
        type=Path,
        metavar="XML",
        help="the labeling config the texts are scored with (default: the corpus's, or the demo's)",
    )
    group.add_argument(
        "--guidelines",
        type=Path,
        metavar="MD",
        help="the guidelines the prompt is built from (default: the corpus's, or the demo's)",
    )


def data_source(args: argparse.Namespace, pool: int, test: int) -> Any:
    """The datasets.Source the data arguments name, or None for the bundled corpus; DataError if unreadable."""
    from backend.bench import datasets

    if args.data is None and args.corpus is None:
        if args.config or args.guidelines:
            raise datasets.DataError("--config and --guidelines go with --data FILE or --corpus NAME")
        return None
    return datasets.source(pool, test, args.data, args.corpus, args.config, args.guidelines)
