"""A fake of the Label Studio calls finish's bulk write makes (backend/loop/finish.py write_labels): predictions
imported as a set, Label Studio's "Create Annotations From Predictions" action, the set's listing and delete, and
one annotation's delete. Behaves as Label Studio 1.23.2 does where finish relies on it: the action converts only
the set's predictions of the selected tasks that have no annotation made from them yet, and copies the result as
it is."""

from __future__ import annotations

import threading
from types import SimpleNamespace


class FakeBulkLabels:
    """Mixed into a fake client whose `listed` tasks hold `annotations` lists of dicts."""

    def setup_bulk(self, first_annotation: int = 50_000) -> None:
        self.predictions: list[dict] = []  # {"task", "result", "model_version", "converted"}
        self.next_annotation, self.lock = first_annotation, threading.Lock()
        self.calls: list[str] = []
        self.projects.import_predictions = self._import_predictions
        self.actions = SimpleNamespace(create=self._action)
        self.annotations = SimpleNamespace(delete=self._delete_annotation)
        self._client_wrapper = SimpleNamespace(httpx_client=SimpleNamespace(request=self._request))

    def _import_predictions(self, id, request, request_options=None):
        self.calls.append("import predictions")
        self.predictions += [{**p, "converted": False} for p in request]
        return SimpleNamespace(created=len(request))

    def _action(self, id, project, selected_items, request_options):
        assert id == "predictions_to_annotations" and not selected_items["all"]
        self.calls.append("action")
        version = request_options["additional_body_parameters"]["model_version"]
        chosen = set(selected_items["included"])
        tasks = {t.id: t for t in self.listed}
        with self.lock:
            for p in self.predictions:
                if p["model_version"] == version and p["task"] in chosen and not p["converted"]:
                    self.next_annotation += 1
                    made = {
                        "id": self.next_annotation,
                        "result": p["result"],
                        "was_cancelled": False,
                        "import_id": None,
                        "created_at": "2026-12-07T10:00:00.000001Z",
                        "updated_at": "2026-12-07T10:00:00.000002Z",
                    }
                    tasks[p["task"]].annotations = [*tasks[p["task"]].annotations, made]
                    p["converted"] = True

    def _delete_annotation(self, id):
        with self.lock:
            for task in self.listed:
                task.annotations = [a for a in task.annotations if a["id"] != id]

    def _request(self, path, method, json=None, request_options=None):
        assert path.endswith("/model-versions/"), path
        if method == "DELETE":
            self.calls.append(f"delete set {json['model_version']}")
            self.predictions = [p for p in self.predictions if p["model_version"] != json["model_version"]]
            return SimpleNamespace(status_code=200, json=lambda: {"deleted": 1})
        counts: dict[str, int] = {}
        for p in self.predictions:
            counts[p["model_version"]] = counts.get(p["model_version"], 0) + 1
        return SimpleNamespace(status_code=200, json=lambda: counts)

    def sets(self) -> set[str]:
        return {p["model_version"] for p in self.predictions}
