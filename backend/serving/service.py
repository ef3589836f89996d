"""The backend's state in one process: the model (loaded once, in the background), schemas per project, events."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from typing import Any, Callable

from backend import guidelines as guides
from backend.errors import LabelloopError
from backend.labelstudio import schema as schemas
from backend.labelstudio.schema import Config
from backend.llm import calibration as cal
from backend.llm import weights as models
from backend.llm.predictor import Predictor
from backend.loop.project_loop import Loop
from backend.metrics import Metrics
from backend.paths import DEMO_CONFIG
from backend.serving.events import EventLog
from backend.settings import Settings

log = logging.getLogger(__name__)


class NotReady(LabelloopError, RuntimeError):
    """The model is still loading, or failed to load."""


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
