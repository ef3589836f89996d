"""llama.cpp's OpenAI-compatible server (llama-cpp-python, in its own .venv-llama) on 127.0.0.1, for the second engine.

`python -m backend.dev.llama [--port 8000]` serves the embedded GGUF in the foreground (`make llama-server`);
`LlamaServer` starts it for the tests and the engine benchmark and stops it afterwards.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from backend.dev import processes
from backend.errors import LabelloopError
from backend.llm import weights as models
from backend.paths import ROOT

LLAMA_PYTHON = ROOT / ".venv-llama" / "bin" / "python"
MISSING_REASON = (
    "llama-cpp-python is not installed in .venv-llama: make llama "
    '(python3 -m venv .venv-llama && CMAKE_ARGS="-DGGML_NATIVE=OFF" .venv-llama/bin/pip install -r requirements/llama.txt)'
)
ALIAS = models.EMBEDDED_NAME


class LlamaServerError(LabelloopError, RuntimeError):
    http_status = 503


def server_env() -> dict[str, str]:
    """A bare environment: llama-cpp-python's server reads its settings from the environment too, and there they
    win over its command line, so the PORT that `make` exports for the backend would move it onto the backend's."""
    return {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR", "LD_LIBRARY_PATH")}


def available() -> bool:
    return LLAMA_PYTHON.exists()


def command(gguf: Path, port: int, threads: int, n_ctx: int = 2048, binary: Path | None = None) -> list[str]:
    """llama-cpp-python's server, or with `binary` llama.cpp's own C++ `llama-server` (built separately)."""
    if binary:
        return [
            str(binary),
            "-m",
            str(gguf),
            "--alias",
            ALIAS,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "-t",
            str(threads),
            "-c",
            str(n_ctx * 2),
            "-np",
            "2",
        ]
    # logits_all is what lets the server return log-probabilities; the alias keeps the model's id independent of
    # where the GGUF lies on this machine.
    return [
        str(LLAMA_PYTHON),
        "-m",
        "llama_cpp.server",
        "--model",
        str(gguf),
        "--model_alias",
        ALIAS,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(n_ctx),
        "--n_threads",
        str(threads),
        "--n_threads_batch",
        str(threads),
        "--logits_all",
        "true",
        "--verbose",
        "false",
    ]


class LlamaServer:
    """`with LlamaServer(port, log_path) as url:` the embedded GGUF served on 127.0.0.1; url ends in /v1."""

    def __init__(
        self, port: int, log_path: Path, threads: int | None = None, wait: float = 180.0, binary: Path | None = None
    ) -> None:
        self.port, self.log_path, self.wait, self.binary = port, log_path, wait, binary
        self.threads = threads or os.cpu_count() or 1
        self.url = f"http://127.0.0.1:{port}/v1"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> str:
        if not (self.binary or available()):
            raise LlamaServerError(MISSING_REASON)
        gguf = models.assemble_embedded(models.default_cache_dir())
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(
                command(gguf, self.port, self.threads, binary=self.binary),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env=server_env(),
            )
        deadline = time.monotonic() + self.wait
        while True:
            try:
                if httpx.get(f"{self.url}/models", timeout=2).status_code == 200:
                    return self.url
            except httpx.HTTPError:  # not listening yet
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise LlamaServerError(f"llama.cpp's server did not start; log:\n{self.log_path.read_text()[-2000:]}")
            time.sleep(0.5)

    def __exit__(self, *exc) -> None:
        processes.stop(self.proc)


def main() -> int:
    parser = argparse.ArgumentParser(description="Serve the embedded GGUF with llama.cpp's OpenAI-compatible server.")
    parser.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (default %(default)s)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads (default: all, %(default)s)")
    args = parser.parse_args()
    if not available():
        print(f"error: {MISSING_REASON}", file=sys.stderr)
        return 1
    gguf = models.assemble_embedded(models.default_cache_dir())
    print(
        f"serving {gguf.name} as {ALIAS!r} at http://127.0.0.1:{args.port}/v1 "
        f"(backend: LLM_ENGINE=openai LLM_SERVER_URL=http://127.0.0.1:{args.port}/v1)",
        flush=True,
    )
    os.execve(str(LLAMA_PYTHON), command(gguf, args.port, args.threads), server_env())


if __name__ == "__main__":
    sys.exit(main())
