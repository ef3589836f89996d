import pytest

from backend.dev import tiny_model
from backend.llm import weights as models


def test_directory_identity_is_stable_and_follows_the_content(tmp_path):
    d = tiny_model.save(tmp_path / "tiny")
    a, b = models.resolve(str(d), tmp_path), models.resolve(str(d), tmp_path)
    assert a == b and a.path == str(d.resolve())
    (d / "extra.txt").write_text("changed")
    assert models.resolve(str(d), tmp_path).identity != a.identity


def test_hub_ids_are_passed_through():
    s = models.resolve("Qwen/Qwen2.5-0.5B-Instruct")
    assert s.path == "Qwen/Qwen2.5-0.5B-Instruct" and s.identity == "hub:Qwen/Qwen2.5-0.5B-Instruct"


@pytest.mark.parametrize("spec, message", [("/nope/model.gguf", "no such GGUF"), ("./not/a/thing", "not a directory")])
def test_bad_model_specs_are_clear_errors(spec, message, tmp_path):
    with pytest.raises(models.ModelSourceError, match=message):
        models.resolve(spec, tmp_path)


def test_directory_without_config_is_rejected(tmp_path):
    with pytest.raises(models.ModelSourceError, match="config.json"):
        models.resolve(str(tmp_path), tmp_path)


def test_tampered_parts_are_refused(tmp_path, monkeypatch):
    parts = tmp_path / "pkg"
    (parts / "data").mkdir(parents=True)
    (parts / "data" / "part01.bin").write_bytes(b"not the model")
    monkeypatch.setitem(models.PACKAGED, "embedded", models.Packaged("fake", ("fake",), "0" * 64, 10))
    monkeypatch.setattr(models, "_package_dir", lambda name: parts)
    with pytest.raises(models.ModelSourceError, match="sha256"):
        models.assemble_embedded(tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*.gguf"))  # nothing half-made is left to be trusted later


def test_a_packaged_model_not_installed_says_how(tmp_path, monkeypatch):
    monkeypatch.setitem(models.PACKAGED, "embedded-9b", models.Packaged("nine", ("not_a_package_here",), "0" * 64, 1))
    with pytest.raises(models.ModelSourceError, match="not-a-package-here is not installed"):
        models.resolve("embedded-9b", tmp_path)


def test_a_converted_packaged_model_serves_without_its_wheels(tmp_path, monkeypatch):
    # The image removes the wheels and the GGUF once converted: resolve must not need them again.
    monkeypatch.setitem(models.PACKAGED, "embedded-9b", models.Packaged("nine", ("not_a_package_here",), "a" * 64, 1))
    converted = tmp_path / f"nine-{'a' * 12}"
    converted.mkdir()
    (converted / "config.json").write_text("{}")
    source = models.resolve("embedded-9b", tmp_path)
    assert source.path == str(converted) and source.identity == f"gguf:{'a' * 64}"
