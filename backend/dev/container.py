"""The backend's container image, built from the checkout (`make container`): localhost/labelloop:latest.

Built with podman (`--isolation chroot`: the only isolation that works on hosts with cgroups in hybrid mode), in
the docker format (an OCI image drops the HEALTHCHECK). Where the Dockerfile's base image (python:3.11-slim) cannot
be pulled, an equivalent one is made from Debian's packages (debootstrap of bookworm with python3, venv, pip, make,
curl; bookworm's python3 is 3.11) and passed as BASE_IMAGE. A host whose pip needs its own settings (a CA bundle,
extra indexes, constraints) hands them to the build read-only: one pip.conf mounted at /etc/pip.conf, and every
file or directory it names mounted at the same path. None of it is copied into a layer.

  python -m backend.dev.container build [--tag T] [--base-image IMAGE]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

from backend.errors import LabelloopError
from backend.paths import ROOT

TAG = "localhost/labelloop:latest"
BASE_IMAGE = "python:3.11-slim"
DEBIAN_BASE = "localhost/labelloop-base:bookworm"
# At its peak the build holds the new layer three times (container, commit blob, image) and pip's downloads:
# 12.4 GB more on disk, measured.
BUILD_ROOM_GB = 13
LABEL = "org.opencontainers.image.title=labelloop"  # the Dockerfile's LABEL
DEBIAN_PACKAGES = "python3,python3-venv,python3-pip,make,curl,ca-certificates"
DEBIAN_MIRROR = "http://deb.debian.org/debian"


class ContainerError(LabelloopError, RuntimeError):
    """The image cannot be built or inspected; the message is one line saying why."""

    http_status = 500


def tool() -> str | None:
    """podman's path, or None where it is not installed."""
    return shutil.which("podman")


def _run(args: list[str], doing: str, timeout: float = 3600, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)
    if done.returncode:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise ContainerError(f"{doing} failed: {' | '.join(tail)}")
    return done


def image_exists(name: str) -> bool:
    return subprocess.run(["podman", "image", "exists", name]).returncode == 0


def base_image(wanted: str = BASE_IMAGE, progress: bool = True) -> str:
    """`wanted` if it is here or can be pulled, else the Debian equivalent (made once, about a minute)."""
    if image_exists(wanted) or subprocess.run(["podman", "pull", "-q", wanted], capture_output=True).returncode == 0:
        return wanted
    if image_exists(DEBIAN_BASE):
        return DEBIAN_BASE
    if not shutil.which("debootstrap"):
        raise ContainerError(f"{wanted} cannot be pulled and debootstrap is missing: apt-get install debootstrap")
    if progress:
        print(f"{wanted} cannot be pulled: making {DEBIAN_BASE} from Debian's packages", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="labelloop-base-") as root:
        _run(
            ["debootstrap", "--variant=minbase", f"--include={DEBIAN_PACKAGES}", "bookworm", root, DEBIAN_MIRROR],
            "debootstrap of bookworm",
        )
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        _run(["podman", "import", "-", DEBIAN_BASE], "importing the Debian base", stdin=tar.stdout)
        tar.wait()
    return DEBIAN_BASE


def pip_settings() -> dict[str, str]:
    """The host's effective pip settings (`pip config list`, environment included), as pip.conf keys."""
    done = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True)
    settings = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition("=")
        name = key.rsplit(".", 1)[-1]
        if value and name not in settings:
            settings[name] = value.strip().strip("'\"")
    for name, value in os.environ.items():  # PIP_CERT=... is what `pip config list` shows as :env:.cert
        if name.startswith("PIP_") and value:
            settings[name[4:].lower().replace("_", "-")] = value
    return settings


def host_paths(settings: dict[str, str]) -> list[str]:
    """The files and directories the settings name (paths, or file:// URLs), which the build must see."""
    paths = set()
    for value in settings.values():
        for word in value.split():
            # A local index (file:///opt/pypi/simple) links to files beside it (/opt/pypi/files): mount its parent.
            path = os.path.dirname(word.removeprefix("file://").rstrip("/")) if word.startswith("file://") else word
            while path and not os.path.exists(path) and path != "/":
                path = os.path.dirname(path)  # file:///opt/pypi/simple: mount what exists
            if path.startswith("/") and path != "/" and os.path.exists(path):
                paths.add(path)
    return sorted(paths)


def _check_room(needed_gb: float = BUILD_ROOM_GB) -> None:
    """Refuse early, with the place and the figure, where the build would fill the disk halfway through."""
    store = subprocess.run(["podman", "info", "--format", "{{.Store.GraphRoot}}"], capture_output=True, text=True)
    for place in {store.stdout.strip() or "/var/lib/containers", os.environ.get("TMPDIR") or "/var/tmp"}:
        while not os.path.exists(place):
            place = os.path.dirname(place)
        free = shutil.disk_usage(place).free / 1e9
        if free < needed_gb:
            raise ContainerError(
                f"the build needs about {needed_gb:.0f} GB free under {place} and has {free:.1f} GB: "
                "free some (podman image prune; podman system df shows what is held)"
            )


def build(tag: str = TAG, base: str | None = None, progress: bool = True) -> dict:
    """Build the image from the checkout; what was built and how long it took."""
    if tool() is None:
        raise ContainerError("podman is not installed: apt-get install podman buildah")
    _check_room()
    started = time.monotonic()
    base = base or base_image(progress=progress)
    settings = pip_settings()
    with tempfile.NamedTemporaryFile("w", suffix=".conf", prefix="labelloop-pip-") as conf:
        conf.write("[global]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))
        conf.flush()
        os.chmod(conf.name, 0o644)
        volumes = [f"--volume={conf.name}:/etc/pip.conf:ro"]
        volumes += [f"--volume={p}:{p}:ro" for p in host_paths(settings)]
        command = [
            "podman",
            "build",
            "--format",
            "docker",
            "--isolation",
            "chroot",
            "--network",
            "host",
            "--build-arg",
            f"BASE_IMAGE={base}",
            *volumes,
            "-t",
            tag,
            "-f",
            str(ROOT / "Dockerfile"),
            str(ROOT),
        ]
        if progress:
            print("building", tag, "from", base, file=sys.stderr)
        done = subprocess.run(
            command, stdout=None if progress else subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        if done.returncode:
            tail = (done.stdout or "").strip().splitlines()[-3:]
            raise ContainerError(f"podman build failed ({done.returncode}): {' | '.join(tail) or 'see its output'}")
    # A rebuild leaves the previous image dangling (5 GB each): only ours carry this label.
    subprocess.run(["podman", "image", "prune", "-f", "--filter", f"label={LABEL}"], capture_output=True)
    return {"tag": tag, "base": base, "seconds": round(time.monotonic() - started, 1), **inspect(tag)}


def inspect(tag: str = TAG) -> dict:
    """The image's size and config (user, ports, health check, command, environment)."""
    import json

    info = json.loads(_run(["podman", "image", "inspect", tag], f"inspecting {tag}").stdout)[0]
    config = info.get("Config") or {}
    return {
        "size_bytes": int(info.get("Size") or 0),
        "user": config.get("User"),
        "ports": sorted(config.get("ExposedPorts") or {}),
        "healthcheck": config.get("Healthcheck") or info.get("Healthcheck"),  # podman 4.3: top level
        "cmd": config.get("Cmd"),
        "env": config.get("Env") or [],
        "workdir": config.get("WorkingDir"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m backend.dev.container",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("action", choices=["build"])
    parser.add_argument("--tag", default=TAG, help="image name (default %(default)s)")
    parser.add_argument("--base-image", help=f"base image (default {BASE_IMAGE}, or the Debian equivalent)")
    args = parser.parse_args(argv)
    try:
        built = build(args.tag, args.base_image)
    except ContainerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"built {built['tag']} from {built['base']} in {built['seconds']:.0f} s: {built['size_bytes'] / 1e9:.2f} GB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
