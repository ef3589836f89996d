"""The backend's image as admins run it: built by `make container` from the checkout, its config read, started
with a DATA_DIR volume, asked /health, /setup and /predict on the demo config, stopped with SIGTERM, and started
again on the same volume.

`podman run` cannot start containers on hosts whose cgroups are in hybrid mode (these machines); `buildah run
--isolation chroot` runs the image's own command from its own config instead. Where podman or buildah is missing
the test is skipped, except under CI=true."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from backend.dev import container
from backend.dev.processes import free_port
from helpers import CONFIG, ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.container]
APP_UID = 1000  # the Dockerfile's user `app`
TASKS = [{"id": i, "data": {"text": t}} for i, t in enumerate(["I loved every minute.", "Dull and far too long."])]


@pytest.fixture(scope="module")
def image():
    missing = [name for name in ("podman", "buildah") if shutil.which(name) is None]
    if missing:
        reason = f"{' and '.join(missing)} not installed: make container installs them (apt-get install podman buildah)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    started = time.monotonic()
    done = subprocess.run(["make", "-s", "container"], cwd=ROOT, capture_output=True, text=True, timeout=3600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return {**container.inspect(), "build_seconds": time.monotonic() - started}


class Running:
    """The image's command in a buildah container on the host's network, DATA_DIR on a volume."""

    def __init__(self, image: dict, data_dir, log_path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.name = subprocess.run(["buildah", "from", container.TAG], capture_output=True, text=True,
                                   check=True).stdout.strip()
        self.log = open(log_path, "a")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            ["buildah", "run", "--isolation", "chroot", "--network", "host", "--volume",
             f"{data_dir}:/home/app/data", "--env", f"PORT={self.port}", self.name, "--", *image["cmd"]],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def healthy(self, timeout: float = 300) -> float:
        """Seconds from the start to a 200 from /health."""
        deadline = self.started + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"the container exited ({self.proc.returncode})"
            try:
                if requests.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return time.monotonic() - self.started
            except requests.RequestException:
                pass
            time.sleep(1)
        raise AssertionError(f"no healthy /health within {timeout} s")

    def command_pid(self) -> int:
        """The image's command (gunicorn's master), the container's first process: buildah runs it in its session."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and entry.name != str(self.proc.pid):
                try:
                    argv = (entry / "cmdline").read_bytes().split(b"\0")
                    # buildah's own helpers (buildah-chroot-exec) carry the command line too: not them
                    if (os.getsid(int(entry.name)) == self.proc.pid and any(b"gunicorn" in a for a in argv)
                            and not argv[0].startswith(b"buildah")):
                        found.append(int(entry.name))
                except (OSError, ProcessLookupError):
                    continue
        assert found, "gunicorn is not running in the container"
        return min(found)  # the master starts before its workers

    def terminate(self) -> tuple[int, float]:
        """SIGTERM to the container's first process, as `podman stop` sends it; buildah's exit code (the command's)
        and the seconds it took."""
        sent = time.monotonic()
        os.kill(self.command_pid(), signal.SIGTERM)
        code = self.proc.wait(timeout=60)
        return code, time.monotonic() - sent

    def remove(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        subprocess.run(["buildah", "rm", self.name], capture_output=True)
        self.log.close()


def test_the_image_serves_stops_cleanly_and_keeps_its_data(image, tmp_path):
    assert image["user"] == "app" and image["ports"] == ["9090/tcp"] and image["workdir"] == "/app"
    assert "/health" in " ".join(image["healthcheck"]["Test"]) and image["cmd"][0].endswith("gunicorn")
    assert "DATA_DIR=/home/app/data" in image["env"] and "LLM_MODEL=embedded" in image["env"]
    assert image["size_bytes"] > 0
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, APP_UID, APP_UID)  # no user namespace under chroot isolation: the app user's uid owns it
    log = tmp_path / "container.log"

    first = Running(image, data, log)
    try:
        cold = first.healthy()
        version = requests.post(f"{first.url}/setup", json={"project": "1", "schema": CONFIG},
                                timeout=120).json()["model_version"]
        answer = requests.post(f"{first.url}/predict", json={"tasks": TASKS, "project": "1", "label_config": CONFIG},
                               timeout=300)
        assert answer.status_code == 200, answer.text
        results = answer.json()["results"]
        assert [r["model_version"] for r in results] == [version] * 2
        assert {r["result"][0]["value"]["choices"][0] for r in results} <= {"Positive", "Negative", "Neutral"}
        code, took = first.terminate()
        assert took < 30, f"SIGTERM took {took:.1f} s"
        assert code == 0, log.read_text()[-2000:]
    finally:
        first.remove()
    kept = sorted(p.relative_to(data).as_posix() for p in data.rglob("*") if p.is_file())
    assert kept, "the first run left nothing in DATA_DIR"

    second = Running(image, data, log)
    try:
        second.healthy()
        again = requests.post(f"{second.url}/predict", json={"tasks": TASKS, "project": "1", "label_config": CONFIG},
                              timeout=300).json()["results"]
        assert [r["result"] for r in again] == [r["result"] for r in results]  # the same data, the same answers
        assert set(kept) <= {p.relative_to(data).as_posix() for p in data.rglob("*") if p.is_file()}
    finally:
        second.remove()
    print(f"\nimage {image['size_bytes'] / 1e9:.2f} GB, built in {image['build_seconds']:.0f} s, "
          f"cold start to /health {cold:.0f} s, SIGTERM to exit {took:.1f} s")
