"""Every setting, read from the environment once; the README's settings table mirrors this file."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from backend.errors import LabelloopError
from backend.guidelines import DEFAULT_GUIDELINES
from backend.learning import self_training
from backend.llm import cascade
from backend.llm.calibration import SETTINGS as CALIBRATIONS
from backend.llm.calibration import setting as calibration_setting
from backend.llm.scorer import DEVICES
from backend.llm.weights import CASCADE_MODELS, default_cache_dir, parse_cascade
from backend.paths import DEMO_GOLD, GUIDELINES_DIR
from backend.ranking import questions as question_ranking
from backend.ranking import strategies


class SettingsError(LabelloopError, ValueError):
    http_status = 500


# transformers: the model runs in this process (backend/llm/local.py); openai: an OpenAI-compatible server runs it
# (backend/llm/remote.py).
ENGINES = ("transformers", "openai")
# How a task labeled by several annotators gets its one training label: majority vote (backend/labelstudio/tasks.py) or
# CROWDLAB's consensus (backend/quality/label_issues.py), which weighs each annotator by their estimated quality.
CONSENSUS = ("majority", "crowdlab")


def _int(name: str, default: int, low: int = 1) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer") from None
    if value < low:
        raise SettingsError(f"{name}={value} must be at least {low}")
    return value


def _flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        raise SettingsError(f"{name}={raw!r} is not one of 1, 0, true, false, yes, no, on, off")
    return raw in ("1", "true", "yes", "on")


def _fraction(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if not 0 <= value <= 1:
        raise SettingsError(f"{name}={value} must be between 0 and 1")
    return value


@dataclass(frozen=True)
class Settings:
    llm_model: str = "embedded"
    llm_cache_dir: Path = field(default_factory=default_cache_dir)
    guidelines: Path = DEFAULT_GUIDELINES
    calibration: str = "auto"
    calibration_dir: Path = GUIDELINES_DIR / "calibration"
    few_shot: bool = True
    batch_size: int = 0  # 0: by device (backend/llm/local.py AUTO_BATCH)
    llm_device: str = "auto"
    row_tokens: int = 256
    max_text_tokens: int = 192  # README: Benchmark, long texts
    max_tasks: int = 1000
    max_request_mb: int = 20
    data_dir: Path = Path("data")
    model_wait_seconds: int = 90
    label_studio_url: str = ""
    label_studio_api_key: str = field(default="", repr=False)  # a secret: kept out of logs and reprs
    label_studio_api_key_file: Path | None = None
    rank_strategy: str = "margin"
    rank_questions: str = (
        ""  # "" or "mean" (every question alike), a question's name, name=weight,..., "learning": ranking/questions.py
    )
    basic_auth_user: str = ""
    basic_auth_pass: str = field(default="", repr=False)
    rescore_chunk: int = 256
    write_chunk: int = 2000
    predict_chunk: int = 48
    predict_timeout: int = 80
    ls_retries: int = 3
    keep_prediction_versions: int = 1
    llm_feature_depth: float = 0.625
    consensus: str = "majority"
    self_train_below: int = self_training.BELOW  # labels: a question with fewer is self-trained; 0: never
    self_teach: bool = False  # before the first label, a model taught by the LLM's own surest answers serves
    gold_file: Path | None = DEMO_GOLD  # None: the project has no gold tasks
    llm_engine: str = "transformers"
    llm_server_url: str = ""
    llm_server_model: str = ""
    llm_server_api_key: str = field(default="", repr=False)
    llm_server_top_logprobs: int = 300
    llm_server_concurrency: int = 4
    llm_server_timeout: int = 60
    # LLM_MODEL=cascade (backend/llm/cascade.py): the first model answers every text, the second again the `share`
    # of the pool the first is least sure of.
    cascade_models: tuple[str, str] = CASCADE_MODELS
    cascade_share: float = cascade.SHARE

    @classmethod
    def from_env(cls) -> "Settings":
        env = os.environ.get
        calibration = env("CALIBRATION", "auto").strip() or "auto"
        if calibration_setting(calibration) is None and not Path(calibration).is_file():
            raise SettingsError(f"CALIBRATION={calibration!r}: use {', '.join(CALIBRATIONS)} or a JSON file path")
        auth_user, auth_pass = env("BASIC_AUTH_USER", "").strip(), env("BASIC_AUTH_PASS", "")
        if bool(auth_user) != bool(auth_pass):
            raise SettingsError("set both BASIC_AUTH_USER and BASIC_AUTH_PASS, or neither")
        engine = env("LLM_ENGINE", "").strip().lower() or "transformers"
        if engine not in ENGINES:
            raise SettingsError(f"LLM_ENGINE={engine!r}: use {' or '.join(ENGINES)}")
        server_url = env("LLM_SERVER_URL", "").strip().rstrip("/")
        if engine == "openai" and not server_url:
            raise SettingsError("LLM_ENGINE=openai needs LLM_SERVER_URL, e.g. http://127.0.0.1:8000/v1")
        strategy = env("RANK_STRATEGY", "").strip() or "margin"
        try:
            strategies.get(strategy)
        except ValueError as e:
            raise SettingsError(f"RANK_STRATEGY: {e}") from None
        rank_questions = env("RANK_QUESTIONS", "").strip()
        try:
            question_ranking.parse_weights(rank_questions)
        except ValueError as e:
            raise SettingsError(f"RANK_QUESTIONS: {e}") from None
        device = env("LLM_DEVICE", "").strip().lower() or "auto"
        if device not in DEVICES:
            raise SettingsError(f"LLM_DEVICE={device!r}: use {', '.join(DEVICES)}")
        consensus = env("CONSENSUS", "").strip().lower() or "majority"
        if consensus not in CONSENSUS:
            raise SettingsError(f"CONSENSUS={consensus!r}: use {' or '.join(CONSENSUS)}")
        gold_file = env("GOLD_FILE", "").strip()
        if gold_file.lower() == "none":
            gold_path = None
        elif not gold_file:
            gold_path = DEMO_GOLD
        elif Path(gold_file).is_file():
            gold_path = Path(gold_file)
        else:
            raise SettingsError(f"GOLD_FILE={gold_file!r} is not a file (give a gold JSONL, JSON or CSV file, or none)")
        try:
            cascade_models = parse_cascade(env("LLM_CASCADE_MODELS", ""))
        except ValueError as e:
            raise SettingsError(str(e)) from None
        cascade_share = _fraction("LLM_CASCADE_SHARE", cascade.SHARE)
        if not 0 < cascade_share < 1:
            raise SettingsError(f"LLM_CASCADE_SHARE={cascade_share} must lie strictly between 0 and 1")
        return cls(
            llm_model=env("LLM_MODEL", "").strip() or "embedded",
            llm_cache_dir=default_cache_dir(),
            guidelines=Path(env("GUIDELINES", "").strip() or DEFAULT_GUIDELINES),
            calibration=calibration,
            calibration_dir=Path(env("CALIBRATION_DIR", "").strip() or GUIDELINES_DIR / "calibration"),
            few_shot=env("FEW_SHOT", "true").strip().lower() not in ("0", "false", "no", "off"),
            batch_size=_int("BATCH_SIZE", 0, low=0),
            llm_device=device,
            row_tokens=_int("ROW_TOKENS", 256, low=16),
            max_text_tokens=_int("MAX_TEXT_TOKENS", 192, low=8),
            max_tasks=_int("MAX_TASKS", 1000),
            max_request_mb=_int("MAX_REQUEST_MB", 20),
            data_dir=Path(env("DATA_DIR", "").strip() or "data"),
            model_wait_seconds=_int("MODEL_WAIT_SECONDS", 90, low=0),
            label_studio_url=env("LABEL_STUDIO_URL", "").strip().rstrip("/"),
            label_studio_api_key=env("LABEL_STUDIO_API_KEY", "").strip(),
            label_studio_api_key_file=Path(key_file) if (key_file := env("LABEL_STUDIO_API_KEY_FILE")) else None,
            rank_strategy=strategy,
            rank_questions=rank_questions,
            basic_auth_user=auth_user,
            basic_auth_pass=auth_pass,
            rescore_chunk=_int("RESCORE_CHUNK", 256),
            write_chunk=_int("WRITE_CHUNK", 2000),
            predict_chunk=_int("PREDICT_CHUNK", 48),
            predict_timeout=_int("PREDICT_TIMEOUT", 80),
            ls_retries=_int("LS_RETRIES", 3, low=0),
            keep_prediction_versions=_int("KEEP_PREDICTION_VERSIONS", 1),
            llm_feature_depth=_fraction("LLM_FEATURE_DEPTH", 0.625),
            consensus=consensus,
            self_train_below=_int("SELF_TRAIN_BELOW", self_training.BELOW, low=0),
            self_teach=_flag("SELF_TEACH", False),
            gold_file=gold_path,
            llm_engine=engine,
            llm_server_url=server_url,
            llm_server_model=env("LLM_SERVER_MODEL", "").strip(),
            llm_server_api_key=env("LLM_SERVER_API_KEY", "").strip(),
            llm_server_top_logprobs=_int("LLM_SERVER_TOP_LOGPROBS", 300),
            llm_server_concurrency=_int("LLM_SERVER_CONCURRENCY", 4),
            llm_server_timeout=_int("LLM_SERVER_TIMEOUT", 60),
            cascade_models=cascade_models,
            cascade_share=cascade_share,
        )

    def question_weights(self, names: Sequence[str]) -> dict[str, float]:
        """How much each of a config's questions counts in the ranking (RANK_QUESTIONS)."""
        return question_ranking.weights_for(question_ranking.parse_weights(self.rank_questions), names)

    def ls_api_key(self) -> str:
        """The key from LABEL_STUDIO_API_KEY, else read now from LABEL_STUDIO_API_KEY_FILE (a secret mounted as a
        file, or one written after the backend started); "" when neither is set or the file is missing."""
        if self.label_studio_api_key or not self.label_studio_api_key_file:
            return self.label_studio_api_key
        try:
            return self.label_studio_api_key_file.read_text().strip()
        except OSError:
            return ""
