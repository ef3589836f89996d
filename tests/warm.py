"""`python ARGS` as a real child process, forked from a warm interpreter instead of started cold.

A cold `python -m backend.cli x` spends one to two seconds importing torch, transformers, sklearn, scipy and pandas
before the script does anything; the tests run a couple of hundred of them. `run` hands the command to a zygote: a
`python` started once per test session that has imported those third-party packages (and nothing of backend/ or of
the tests) and forks one child per command. The child is then set up as `python` would set up a new process: the
working directory, the environment, sys.argv and sys.path[0] of a script, `-m` or `-c`, its own stdin (/dev/null),
stdout and stderr, `__main__`, the exit status of SystemExit or of an uncaught exception (its traceback on stderr),
atexit and non-daemon threads at exit. It imports backend/ itself, from where a cold `python` would.

What it does not redo is what those packages read from the environment at import time: they read the session's.
A test about the interpreter's start itself (what is imported, an installed console script) uses subprocess.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Imported once by the zygote: every module of backend/ and what the tiny model and the plots load lazily; then
# backend's own modules are dropped again, so that each child imports (and runs) its code fresh.
ZYGOTE = r"""
import importlib, importlib.machinery, json, logging, os, pkgutil, signal, sys, traceback
from importlib import _bootstrap_external

# Where bytecode is not written (PYTHONDONTWRITEBYTECODE), each child would compile backend/ again: keep the code
# objects compiled here, by source text, so that a child's import is the same code without the compile.
compiled, source_to_code = {}, _bootstrap_external.SourceLoader.source_to_code


def cached_source_to_code(self, data, path, *, _optimize=-1):
    key = (path, bytes(data), _optimize)
    if key not in compiled:
        compiled[key] = source_to_code(self, data, path, _optimize=_optimize)
    return compiled[key]


_bootstrap_external.SourceLoader.source_to_code = cached_source_to_code
try:
    import backend
    for info in pkgutil.walk_packages(backend.__path__, "backend."):
        if not info.name.endswith(("__main__", "wsgi", "gunicorn_conf")):
            try:
                importlib.import_module(info.name)
            except Exception:
                pass
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM  # noqa: F401
    from transformers.convert_slow_tokenizer import TikTokenConverter  # noqa: F401
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401
except Exception:
    pass
for name in [n for n in sys.modules if n == "backend" or n.startswith("backend.")]:
    del sys.modules[name]
# What importing backend/ configured (absl's basicConfig when rouge_score first logs) a child redoes if it imports it.
logging.root.handlers.clear()
logging.root.setLevel(logging.WARNING)
importlib.invalidate_caches()
requests, replies = os.fdopen(int(sys.argv[1]), "r"), os.fdopen(int(sys.argv[2]), "w")
for line in requests:
    job = json.loads(line)
    pid = os.fork()
    if pid == 0:
        requests.close()
        replies.close()
        code = 1
        try:
            import atexit, io, runpy, threading
            os.chdir(job["cwd"])
            os.environ.clear()
            os.environ.update(job["env"])
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(os.open(job["stdout"], os.O_WRONLY | os.O_TRUNC), 1)
            os.dup2(os.open(job["stderr"], os.O_WRONLY | os.O_TRUNC), 2)
            sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)))
            sys.stdout = sys.__stdout__ = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)))
            sys.stderr = sys.__stderr__ = io.TextIOWrapper(
                io.BufferedWriter(io.FileIO(2, "w", closefd=False)), errors="backslashreplace", line_buffering=True
            )
            args = job["args"]
            try:
                try:
                    if args[0] == "-c":
                        sys.argv = ["-c", *args[2:]]
                        sys.path[0] = ""
                        main = type(sys)("__main__")
                        main.__builtins__ = __builtins__
                        sys.modules["__main__"] = main
                        exec(compile(args[1], "<string>", "exec"), main.__dict__)
                    elif args[0] == "-m":
                        sys.argv = [args[1], *args[2:]]
                        sys.path[0] = os.getcwd()
                        runpy._run_module_as_main(args[1])
                    else:
                        sys.argv = list(args)
                        sys.path[0] = os.path.dirname(os.path.abspath(args[0]))
                        runpy.run_path(args[0], run_name="__main__")
                    code = 0
                except SystemExit as done:
                    if done.code is None:
                        code = 0
                    elif isinstance(done.code, int):
                        code = done.code
                    else:
                        print(done.code, file=sys.stderr)
                        code = 1
                except BaseException as error:
                    # The traceback as `python` prints it: from the script's or the code's first frame.
                    tb = error.__traceback__
                    while tb is not None and (
                        tb.tb_frame.f_globals is globals()
                        or (args[0] not in ("-c", "-m") and "runpy" in tb.tb_frame.f_code.co_filename)
                    ):
                        tb = tb.tb_next
                    sys.excepthook(type(error), error, error.with_traceback(tb).__traceback__)
                    code = -signal.SIGINT if isinstance(error, KeyboardInterrupt) else 1
                threading._shutdown()
                atexit._run_exitfuncs()
            finally:
                for stream in (sys.stdout, sys.stderr):
                    try:
                        stream.flush()
                    except Exception:
                        pass
        except BaseException:
            traceback.print_exc()
        if code < 0:
            signal.signal(-code, signal.SIG_DFL)
            os.kill(os.getpid(), -code)
        os._exit(code & 0xFF)
    replies.write(json.dumps({"pid": pid}) + "\n")
    replies.flush()
    _, status = os.waitpid(pid, 0)
    replies.write(json.dumps({"status": os.waitstatus_to_exitcode(status)}) + "\n")
    replies.flush()
"""


class _Zygote:
    def __init__(self) -> None:
        to_zygote_r, self._to_zygote = os.pipe()
        self._from_zygote, from_zygote_w = os.pipe()
        self._proc = subprocess.Popen(
            [sys.executable, "-c", ZYGOTE, str(to_zygote_r), str(from_zygote_w)],
            cwd=ROOT,
            pass_fds=(to_zygote_r, from_zygote_w),
            stdin=subprocess.DEVNULL,
        )
        os.close(to_zygote_r)
        os.close(from_zygote_w)
        self._replies = os.fdopen(self._from_zygote, "r")
        self._lock = threading.Lock()

    def alive(self) -> bool:
        return self._proc.poll() is None

    def _reply(self, timeout: float | None) -> dict | None:
        if timeout is not None and not select.select([self._replies], [], [], max(timeout, 0))[0]:
            return None
        line = self._replies.readline()
        if not line:
            raise RuntimeError("the warm python zygote died")
        return json.loads(line)

    def run(self, args, cwd, env, timeout) -> subprocess.CompletedProcess:
        with self._lock, tempfile.TemporaryDirectory(prefix="warm-") as tmp:
            out, err = Path(tmp, "stdout"), Path(tmp, "stderr")
            out.touch()
            err.touch()
            job = {"args": args, "cwd": str(cwd), "env": env, "stdout": str(out), "stderr": str(err)}
            os.write(self._to_zygote, (json.dumps(job) + "\n").encode())
            pid = self._reply(None)["pid"]
            reply = self._reply(timeout)
            if reply is None:
                os.kill(pid, signal.SIGKILL)
                self._reply(None)
                raise subprocess.TimeoutExpired([sys.executable, *args], timeout, out.read_text(), err.read_text())
            return subprocess.CompletedProcess(
                [sys.executable, *args],
                reply["status"],
                out.read_text(errors="replace"),
                err.read_text(errors="replace"),
            )

    def close(self) -> None:
        try:
            os.close(self._to_zygote)
            self._proc.wait(timeout=10)
        except Exception:
            self._proc.kill()


_zygote: _Zygote | None = None


def start() -> _Zygote:
    """The zygote, started if it is not running; it imports in the background until its first command."""
    global _zygote
    if _zygote is None or not _zygote.alive():
        _zygote = _Zygote()
        atexit.register(_zygote.close)
    return _zygote


def run(
    args: list, *, cwd: str | Path | None = None, env: dict[str, str] | None = None, timeout: float | None = None
) -> subprocess.CompletedProcess:
    """subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout),
    forked from the warm zygote. args: a script and its arguments, or "-m", a module, ..., or "-c", code, ..."""
    args = [str(a) for a in args]
    return start().run(args, Path(cwd or os.getcwd()).resolve(), dict(os.environ if env is None else env), timeout)


def labelloop(command: str) -> list[str]:
    """`labelloop COMMAND` as python's arguments (for run() or subprocess), from the checkout's package."""
    return ["-m", "backend.cli", command]
