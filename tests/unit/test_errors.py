"""Every error labelloop raises for a person to read derives from backend.errors.LabelloopError, so the commands
answer all of them alike; the few that do not are named here with the reason."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import pkgutil
from pathlib import Path

import backend
from backend.errors import LabelloopError

# Not user errors: a signal between two parts of the program, caught before anyone reads it.
EXEMPT = {
    "backend.llm.scorer.DeadlineExceeded": "a request's deadline passing, caught by the loop, which answers it",
}
SUFFIXES = ("Error", "Unavailable", "Exceeded")
# Read, not imported: importing it starts the service, which loads the model in this process.
READ_NOT_IMPORTED = {"backend.serving.wsgi"}


def _unimportable(name: str) -> None:
    raise ImportError(f"{name} cannot be imported, so its errors cannot be checked")


def backend_modules() -> list:
    # An import failure fails the test (walk_packages alone would skip the package): a module not imported is a
    # module not checked.
    names = [m.name for m in pkgutil.walk_packages(backend.__path__, prefix="backend.", onerror=_unimportable)]
    assert READ_NOT_IMPORTED <= set(names)
    return [importlib.import_module(name) for name in names if name not in READ_NOT_IMPORTED]


def error_classes() -> dict[str, type]:
    found = {}
    for module in backend_modules():
        for name, value in vars(module).items():
            if inspect.isclass(value) and value.__module__ == module.__name__ and name.endswith(SUFFIXES):
                found[f"{module.__name__}.{name}"] = value
    return found


def test_every_error_derives_from_the_one_base():
    classes = error_classes()
    assert len(classes) > 30, sorted(classes)  # the walk found the package, not an empty shell
    stray = [name for name, cls in classes.items() if name not in EXEMPT and not issubclass(cls, LabelloopError)]
    assert stray == []
    assert set(EXEMPT) <= set(classes), "an exemption names a class that is gone"
    for name in EXEMPT:
        assert not issubclass(classes[name], LabelloopError), f"{name} is exempt but derives from the base"


def test_the_modules_read_not_imported_define_no_error():
    for name in READ_NOT_IMPORTED:
        source = Path(importlib.util.find_spec(name).origin).read_text()
        classes = [node.name for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ClassDef)]
        assert classes == [], f"{name} defines {classes}: check them here, or import the module"


def test_errors_keep_the_builtin_base_callers_catch():
    from backend.labelstudio.client import LabelStudioError
    from backend.labelstudio.schema import SchemaError
    from backend.labelstudio.tasks import LabelStudioUnavailable
    from backend.settings import SettingsError

    assert issubclass(SchemaError, ValueError) and issubclass(SettingsError, ValueError)
    assert issubclass(LabelStudioUnavailable, LabelStudioError) and issubclass(LabelStudioError, RuntimeError)


def test_one_name_per_error():
    by_name: dict[str, list[str]] = {}
    for qualified in error_classes():
        by_name.setdefault(qualified.rsplit(".", 1)[1], []).append(qualified)
    assert {name: where for name, where in by_name.items() if len(where) > 1} == {}


def test_every_error_says_its_http_status_once_and_the_web_layer_answers_it(tmp_path):
    from flask import Flask

    from backend.serving import app as web
    from backend.serving.service import Service
    from backend.settings import Settings

    classes = {name: cls for name, cls in error_classes().items() if issubclass(cls, LabelloopError)}
    unsaid = [name for name, cls in classes.items() if "http_status" not in vars(cls) and cls is not web.ApiError]
    assert unsaid == [], "each error class says its own HTTP status"
    app: Flask = web.create_app(Service(Settings(data_dir=tmp_path), loader=lambda s: None))

    def raising(cls: type):
        def view():
            raise web.ApiError(418, "a message for the user") if cls is web.ApiError else cls("a message for the user")

        return view

    for i, (_, cls) in enumerate(sorted(classes.items())):
        app.add_url_rule(f"/raise/{i}", f"raise_{i}", raising(cls))
    client = app.test_client()
    for i, (name, cls) in enumerate(sorted(classes.items())):
        answer = client.get(f"/raise/{i}")
        expected = 418 if cls is web.ApiError else cls.http_status
        assert 400 <= expected < 600 and answer.status_code == expected, name
        assert answer.json == {"error": "a message for the user"}, name
