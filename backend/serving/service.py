"""The backend's state in one process: the model (loaded once, in the background), schemas per project, events."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from typing import Any, Callable, TypedDict

from backend import guidelines as guides
from backend.errors import LabelloopError
from backend.labelstudio import schema as schemas
from backend.labelstudio.schema import Config
from backend.llm import calibration as cal
from backend.llm import weights as models
from backend.llm.cascade import CASCADE, Cascade
from backend.llm.predictor import Predictor
from backend.loop.project_loop import CalibrationRecord, Loop
from backend.loop.projects import ModelSet, TrainingRecord
from backend.loop.routing import Coverage
from backend.metrics import Metrics
from backend.paths import DEMO_CONFIG
from backend.serving.events import EventLog
from backend.settings import Settings

log = logging.getLogger(__name__)


class NotReady(LabelloopError, RuntimeError):
    """The model is still loading, or failed to load."""

    http_status = 503


def load_scorer(settings: Settings, source: models.ModelSource) -> tuple[Any, models.ModelSource]:
    """The engine that computes label log-probabilities, and the identity of the weights as that engine runs them."""
    if settings.llm_engine == "openai":
        from transformers import AutoTokenizer

        from backend.llm.remote import ServerScorer

        scorer = ServerScorer(
            settings.llm_server_url,
            AutoTokenizer.from_pretrained(source.path),
            model=settings.llm_server_model,
            api_key=settings.llm_server_api_key,
            top_logprobs=settings.llm_server_top_logprobs,
            concurrency=settings.llm_server_concurrency,
            timeout=settings.llm_server_timeout,
            max_text_tokens=settings.max_text_tokens,
        )
        scorer.connect(settings.model_wait_seconds)
        log.info("LLM served by %s as %r", settings.llm_server_url, scorer.model)
        # Another engine computes other numbers (llama.cpp runs the GGUF's own quantisation): its own version.
        return scorer, replace(source, identity=f"{source.identity}+openai", weights=source.identity)
    import torch

    from backend.llm.local import AUTO_BATCH, LLMScorer, pick_device

    try:
        device = pick_device(settings.llm_device, torch.cuda.is_available())
    except ValueError as e:
        raise models.ModelSourceError(str(e)) from None
    local = LLMScorer.load(
        source.path,
        device=device,
        batch_size=settings.batch_size or AUTO_BATCH[device],
        row_tokens=settings.row_tokens,
        max_text_tokens=settings.max_text_tokens,
    )
    log.info("LLM on %s, %d rows per pass", device, local.batch_size)
    return local, source


def load_predictor(settings: Settings) -> Predictor:
    if settings.llm_model == CASCADE:
        if CASCADE in settings.cascade_models:  # Settings.from_env refuses it; a Settings built in code may not
            raise models.ModelSourceError("LLM_CASCADE_MODELS: a cascade's models cannot be cascades")
        if settings.llm_engine != "transformers":
            raise models.ModelSourceError("LLM_MODEL=cascade runs both models in this process: LLM_ENGINE=transformers")
        first, second = (load_predictor(replace(settings, llm_model=m)) for m in settings.cascade_models)
        log.info("cascade: %s answers every text, %s again where it is least sure", *settings.cascade_models)
        return Cascade(first, second, settings.cascade_share, layer=round(settings.llm_feature_depth * first.depth))
    started = time.perf_counter()
    scorer, source = load_scorer(settings, models.resolve(settings.llm_model, settings.llm_cache_dir))
    predictor = Predictor(
        scorer,
        source,
        guides.load(settings.guidelines),
        calibration=settings.calibration,
        calibration_dir=settings.calibration_dir,
        few_shot=settings.few_shot,
    )
    # Warm the default project's prompt cache and calibration, so its version is listed and its first call is quick.
    try:
        predictor.setup(schemas.parse(DEMO_CONFIG.read_text()))
    except cal.CalibrationError as e:
        log.warning("default labeling config not warmed: %s", e)
    log.info("model %s loaded in %.1f s", source.name, time.perf_counter() - started)
    return predictor


class FilledQuestion(TypedDict):
    name: str  # the control's from_name
    labels: list[str]
    multiple: bool
    trained: bool  # a trained model answers it (else the LLM)
    model: str | None  # that model's version
    cv_macro_f1: float | None


class LeftOut(TypedDict):
    name: str
    reason: str


class ConfigQuestions(TypedDict):
    filled: list[FilledQuestion]  # the questions the backend pre-fills
    left_out: list[LeftOut]  # the controls left to annotators


class ProjectState(TypedDict):
    """What the backend holds of a project: /versions?project= answers it, the project's page draws it (docs/protocol.md
    says what each key means)."""

    questions: ConfigQuestions | None  # None before /setup or /predict read the config in this process
    calibration: CalibrationRecord | None
    versions: list[str]  # the LLM's and every promoted version
    current: str | None  # the serving trained version
    strategy: str
    lanes: int
    busy: bool
    coverage: Coverage | None  # routing.pool_coverage
    training: list[TrainingRecord]


class Service:
    def __init__(self, settings: Settings, loader: Callable[[Settings], Predictor] = load_predictor) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.events = EventLog(settings.data_dir / "events.jsonl")
        self.schemas: dict[str, Config] = {}
        self._loader = loader
        self._predictor: Predictor | None = None
        self._error: str | None = None
        self._ready = threading.Event()
        self.loop = Loop(settings, self.predictor, self.metrics)

    def start(self) -> None:
        """Load the model in a thread, so the server answers /health at once and reports loading."""
        threading.Thread(target=self._load, name="model-loader", daemon=True).start()

    def _load(self) -> None:
        try:
            self._predictor = self._loader(self.settings)
            self.metrics.model_ready.set(1)
        except Exception as e:  # any failure must reach /health, not die silently in a thread
            log.exception("the model failed to load")
            self._error = f"the model failed to load: {e}"
        finally:
            self._ready.set()

    @property
    def ready(self) -> bool:
        return self._predictor is not None

    @property
    def error(self) -> str | None:
        return self._error

    def predictor(self, wait: float | None = None) -> Predictor:
        self._ready.wait(self.settings.model_wait_seconds if wait is None else wait)
        if self._predictor is None:
            raise NotReady(self._error or "the model is still loading; retry in a few seconds")
        return self._predictor

    def llm_versions(self) -> list[str]:
        """The LLM versions this process serves (none while the model loads)."""
        return self.predictor(wait=0).versions() if self.ready else []

    def project_state(self, project: str) -> ProjectState:
        """What the backend holds of a project, as /versions?project= answers it and the project's page shows it:
        one source for both (docs/protocol.md names the keys)."""
        loop = self.loop
        trained = loop.projects.versions(project)
        current = loop.projects.model(project)
        config = self.schemas.get(project)
        return {
            "questions": _questions(config, current),
            "calibration": loop.calibration_record(project, config) if config and self.ready else None,
            "versions": self.llm_versions() + [v["version"] for v in trained if v.get("promoted")],
            "current": current.version if current else None,
            "strategy": loop.projects.strategy(project),
            "lanes": loop.projects.lanes(project),
            "busy": loop.busy(project),
            "coverage": loop.projects.coverage.get(project),
            "training": trained,
        }

    def known_projects(self) -> list[str]:
        """Every project the backend holds: trained or ranked ones in DATA_DIR, and those connected to this process."""
        return sorted(set(self.loop.projects.on_disk()) | set(self.schemas), key=int)


def _questions(config: Config | None, current: ModelSet | None) -> ConfigQuestions | None:
    """What /setup learned of the project's config: the questions pre-filled (each with the trained model that
    answers it, if any, and its cross-validated macro-F1), and what is left to annotators."""
    if config is None:
        return None
    models = {q.from_name: current.saved_for(config, q) for q in config.questions} if current else {}
    filled: list[FilledQuestion] = [
        {
            "name": q.from_name,
            "labels": list(q.labels),
            "multiple": q.multiple,
            "trained": models.get(q.from_name) is not None,
            "model": getattr(models.get(q.from_name), "version", None),
            "cv_macro_f1": getattr(models.get(q.from_name), "score", None),
        }
        for q in config.questions
    ]
    return {"filled": filled, "left_out": [{"name": n, "reason": r} for n, r in config.left_out]}
