"""Prometheus metrics of one backend process, in a registry of its own so several apps can live in one test run."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# The phases of a pool re-score (backend/loop/rescoring.py) in the order a run meets them: the label values of
# backend_rescore_phase_seconds.
RESCORE_PHASES = ("read config", "read pool", "score", "rank", "list versions", "write", "switch", "delete", "tabs")


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "backend_requests", "HTTP requests answered", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "backend_request_seconds",
            "Time to answer a request",
            ["route"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 100),
            registry=self.registry,
        )
        self.predictions = Counter("backend_predictions", "Tasks pre-annotated", registry=self.registry)
        self.skipped = Counter("backend_tasks_skipped", "Tasks that could not be predicted", registry=self.registry)
        self.events = Counter("backend_webhook_events", "Webhook events received", ["action"], registry=self.registry)
        self.model_version = Gauge(
            "backend_model_version_info", "Model versions served (value 1)", ["model_version"], registry=self.registry
        )
        self.model_ready = Gauge("backend_model_ready", "1 once the LLM is loaded", registry=self.registry)
        self.training_requests = Counter(
            "backend_training_requests", "Webhook events that asked for a training run", registry=self.registry
        )
        self.training_runs = Counter(
            "backend_training_runs",
            "Training runs by result (promoted, kept, skipped, failed)",
            ["result"],
            registry=self.registry,
        )
        self.training_seconds = Histogram(
            "backend_training_seconds",
            "Time from the start of a training run to its decision",
            buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
            registry=self.registry,
        )
        self.ls_errors = Counter(
            "backend_label_studio_errors", "Failed calls to Label Studio (each retry counts)", registry=self.registry
        )
        self.rescore_progress = Gauge(
            "backend_rescore_progress",
            "Share of the pool re-scored in the current or last run (0-1)",
            ["project"],
            registry=self.registry,
        )
        self.rescore_phase_seconds = Histogram(
            "backend_rescore_phase_seconds",
            "Time of each phase of a pool re-score, retries included",
            ["phase"],
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600),
            registry=self.registry,
        )
        self.timeouts = Counter(
            "backend_tasks_timed_out",
            "Tasks answered as skipped because PREDICT_TIMEOUT ran out",
            registry=self.registry,
        )
        self.rescored_tasks = Counter(
            "backend_rescored_tasks", "Tasks re-scored after promotions", registry=self.registry
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
