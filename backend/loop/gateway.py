"""What the background jobs (training.py, rescoring.py) use of the loop, and nothing more.

The loop (project_loop.py) builds one for each run; a test or a benchmark can build its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from backend.labelstudio import schema as schemas
from backend.labelstudio.schema import Config
from backend.llm.predictor import PoolCalibration
from backend.loop.features import TextFeatures
from backend.loop.projects import ModelSet, Projects
from backend.metrics import Metrics
from backend.settings import Settings


class AnswersSource(Protocol):
    def __call__(
        self, config: Config, texts: Sequence[str], model: ModelSet | None, pool: PoolCalibration | None = None
    ) -> dict[str, np.ndarray]:
        """Every question's probabilities for `texts`: its trained model's where it has one, else the LLM's."""


@dataclass(frozen=True)
class Gateway:
    settings: Settings
    metrics: Metrics
    projects: Projects
    text: TextFeatures
    client: Callable[[], Any]  # the Label Studio client, made on first use
    with_retries: Callable[[str, Callable[[], Any]], Any]  # a Label Studio call, retried while it may succeed
    answers: AnswersSource
    serving: Callable[[str, Config], tuple[ModelSet | None, str]]  # the project's serving models and version
    ensure_pool: Callable[[str, Config, Sequence[str]], bool]  # measure the project's calibration if it needs one
    rescore_running: Callable[[str], bool]

    def project_config(self, client: Any, project: str) -> Config:
        config = self.with_retries("reading the project", lambda: client.projects.get(id=int(project)).label_config)
        return schemas.parse_config(config or "")
