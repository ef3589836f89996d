"""Trained models per project on disk: each version's artifact and metrics, and which one serves.

Layout under DATA_DIR/projects/<project>/: `models/<version>.npz` (what the fitted models are made of: a JSON document
with its numpy arrays beside it, read without pickle) and `registry.json` (every version trained, its metrics, whether
it was promoted, and the serving one). Releases before format 3 pickled the models (`models/<version>.joblib`); those
are still read. Both are written through a temporary file and a rename, so a crash at any moment leaves the previous
state readable; the artifact is written before the registry names it, so the registry never points at a missing or
partial file.

Several backend replicas may share DATA_DIR (see the README's "Running at scale"): registry updates hold an
exclusive lock on a file next to it, and a training run holds another for its whole length, so two replicas never
train one project at once or lose each other's versions. `stamp()` lets a replica notice another's changes.
"""

from __future__ import annotations

import fcntl
import importlib
import json
import logging
import os
import re
import sys
import types
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, ContextManager, Iterator, Mapping

import joblib
import numpy as np

from backend.errors import LabelloopError
from backend.files import write_atomically

log = logging.getLogger(__name__)

# registry.json's layout and what its artifacts hold. A registry without the key was written before layouts were
# numbered, in format 1. Format 1: an artifact is one pickled model (the first question's); 2: a pickled set, a model
# per question; 3: the set as a document of plain values and arrays (backend/loop/projects.py reads all three). A
# release reads every format up to its own and refuses a newer one (DataFormatError) rather than misread it.
FORMAT = 3


class DataFormatError(LabelloopError, RuntimeError):
    """DATA_DIR holds a file written by a newer release; the message says which and what to do."""

    http_status = 500


# Artifacts before format 3 are pickles, which name classes by module. Those saved before backend/ had subpackages
# (release 0.1.0) name backend.loop.ProjectModel and backend.classifier.Model, those saved before backend/learning/
# (0.2.0) name backend.loop.classifier's classes; a deployment's trained models must survive the upgrade.
_FORMER_NAMES = {
    ("backend.loop", "ProjectModel"): ("backend.loop.projects", "TrainedModel"),
    ("backend.classifier", "Model"): ("backend.learning.classifier", "Classifier"),
    **{
        ("backend.loop.classifier", name): ("backend.learning.classifier", name)
        for name in ("Classifier", "MultiLabelClassifier", "Mixed")
    },
}


_ARRAY = "__array__"  # a document's placeholder for the array stored beside it under that key's value


def _write_document(f: IO[bytes], document: Any) -> None:
    arrays: dict[str, np.ndarray] = {}

    def plain(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            if value.dtype == object:  # it would be pickled, and read back only by allowing pickles
                raise TypeError("a saved model's arrays hold numbers or strings, not objects")
            key = f"a{len(arrays)}"
            arrays[key] = value
            return {_ARRAY: key}
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, np.generic):
            return value.item()
        return value

    members: dict[str, Any] = {"document": np.array(json.dumps(plain(document))), **arrays}
    np.savez(f, **members)


def _read_document(path: Path) -> Any:
    with np.load(path, allow_pickle=False) as stored:

        def restored(value: Any) -> Any:
            if isinstance(value, dict):
                return stored[value[_ARRAY]] if set(value) == {_ARRAY} else {k: restored(v) for k, v in value.items()}
            if isinstance(value, list):
                return [restored(v) for v in value]
            return value

        return restored(json.loads(str(stored["document"])))


def _resolve_former_names() -> None:
    for (module, name), (new_module, new_name) in _FORMER_NAMES.items():
        target = getattr(importlib.import_module(new_module), new_name)
        holder = sys.modules.get(module)
        if holder is None:
            holder = sys.modules.setdefault(module, types.ModuleType(module))
        if not hasattr(holder, name):
            setattr(holder, name, target)


class ModelStore:
    @staticmethod
    def projects(root: str | os.PathLike) -> list[str]:
        """The projects with a registry under `root` (DATA_DIR)."""
        found = Path(root).glob("projects/*/registry.json")
        return [path.parent.name for path in found if re.fullmatch(r"[0-9]+", path.parent.name)]

    def __init__(self, root: str | os.PathLike, project: str) -> None:
        if not re.fullmatch(r"[0-9]+", str(project)):
            raise ValueError(f"a project is named by its Label Studio id, not {project!r}")  # it becomes a path
        self.dir = Path(root) / "projects" / str(project)
        self.registry_path = self.dir / "registry.json"

    @contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        # flock, not a threading lock: it also holds between processes, and between threads with their own fds.
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / name, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def training_lock(self) -> ContextManager[None]:
        """Held for a whole training run: one run per project across every process sharing DATA_DIR."""
        return self._locked("training.lock")

    def stamp(self) -> tuple[int, int] | None:
        """Changes whenever the registry is rewritten, by this process or another."""
        try:
            st = self.registry_path.stat()
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_ino

    def registry(self) -> dict:
        try:
            data = json.loads(self.registry_path.read_text())
        except FileNotFoundError:
            return {"current": None, "versions": [], "settings": {}, "published": []}
        except (OSError, ValueError) as e:
            # Never silently start over: the artifacts are still there and the admin should know.
            raise RuntimeError(
                f"{self.registry_path} is unreadable ({e}); move it aside to start a new registry"
            ) from None
        found = data.get("format", FORMAT)
        if not isinstance(found, int) or found > FORMAT:
            raise DataFormatError(
                f"{self.registry_path} is in format {found!r}, written by a newer release; this one reads formats up "
                f"to {FORMAT}: run the newer release, or restore DATA_DIR from a backup made by this one (docs/deploy.md)"
            )
        data.setdefault("settings", {})
        return data

    def _save_registry(self, data: dict) -> None:
        stamped = {**data, "format": FORMAT}
        write_atomically(self.registry_path, lambda f: json.dump(stamped, f, indent=1, sort_keys=True))

    def artifact(self, version: str) -> Path:
        """The version's artifact: models/<version>.npz, or the .joblib a release before format 3 wrote."""
        path = self.dir / "models" / f"{version}.npz"
        legacy = self.dir / "models" / f"{version}.joblib"
        return legacy if not path.exists() and legacy.exists() else path

    def add(self, version: str, document: Any, record: Mapping[str, Any], promote: bool) -> None:
        """Keep a trained version, its models as a document of plain values (dicts with string keys, lists, numbers,
        strings, None) and numpy arrays; the serving pointer moves only when `promote`."""
        if promote:
            path = self.dir / "models" / f"{version}.npz"
            write_atomically(path, lambda f: _write_document(f, document), binary=True)
        with self._locked("registry.lock"):
            data = self.registry()
            data["versions"].append({**record, "version": version, "promoted": promote})
            if promote:
                data["current"] = version
            self._save_registry(data)

    def current(self) -> tuple[str, Any] | None:
        """The serving version and its models: the document add() saved, or the object a release before format 3
        pickled; None when nothing trained serves (the LLM serves alone)."""
        version = self.registry().get("current")
        return (version, self.load(version)) if version else None

    def load(self, version: str) -> Any:
        """A promoted version's models, as current() returns them."""
        path = self.artifact(version)
        if path.suffix == ".npz":
            return _read_document(path)
        _resolve_former_names()
        return joblib.load(path)

    def versions(self) -> list[dict]:
        return list(self.registry()["versions"])

    def published(self) -> list[str]:
        """Every model version this backend has written predictions with in the project, least recently written
        first: the only ones housekeeping may delete (imported predictions and other backends' are never here)."""
        return list(self.registry().get("published", []))

    def add_published(self, version: str) -> None:
        with self._locked("registry.lock"):
            data = self.registry()
            published = data.setdefault("published", [])
            if published[-1:] == [version]:
                return
            if version in published:
                published.remove(version)
            published.append(version)
            self._save_registry(data)

    def setting(self, name: str, default: Any = None) -> Any:
        return self.registry()["settings"].get(name, default)

    def set_setting(self, name: str, value: Any) -> None:
        with self._locked("registry.lock"):
            data = self.registry()
            data["settings"][name] = value
            self._save_registry(data)
