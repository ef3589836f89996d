"""The web layer: Label Studio's ML backend protocol. Routes parse, call the service, and answer JSON."""

from __future__ import annotations

import hmac
import logging
import re
import time
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from backend.errors import LabelloopError
from backend.labelstudio import schema as schemas
from backend.loop.project_loop import TRAINING_ACTIONS, LoopError
from backend.metrics import Metrics
from backend.serving import page
from backend.serving.service import Service
from backend.settings import Settings

log = logging.getLogger(__name__)


class ApiError(LabelloopError):
    """A request the web layer refuses as it parses it, with the status it chose."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.http_status = status


# Label Studio's bodies nest a handful of levels (body, tasks, task, data, dialogue, line). Python's JSON parser and
# encoder recurse once per level and fail with RecursionError near 1,000: far deeper bodies are refused on arrival,
# so no handler, log line or answer ever walks one.
MAX_JSON_DEPTH = 64


def _nesting_exceeds(value: Any, limit: int) -> bool:
    """Whether lists and objects nest more than `limit` levels; level by level, so it cannot recurse itself."""
    level = [value] if isinstance(value, (dict, list)) else []  # a bare number, string or null nests nothing
    for _ in range(limit):
        level = [
            child
            for item in level
            for child in (item.values() if isinstance(item, dict) else item)
            if isinstance(child, (dict, list))
        ]
        if not level:
            return False
    return True


def _json_body() -> dict:
    too_deep = f"the request body nests lists and objects more than {MAX_JSON_DEPTH} levels deep"
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # not a ValueError, so `silent` lets it through
        raise ApiError(400, too_deep) from None
    if body is None:
        raise ApiError(400, "the request body must be JSON (Content-Type: application/json)")
    if _nesting_exceeds(body, MAX_JSON_DEPTH):
        raise ApiError(400, too_deep)
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return body


def _project_key(value: Any) -> str | None:
    """Label Studio sends "<project id>.<timestamp>"; the id alone names the project. Anything but a plain id is
    no project: the key names a directory under DATA_DIR."""
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        key = str(value).split(".")[0].strip()
        if re.fullmatch(r"[0-9]{1,18}", key):
            return key
    return None


def _webhook_project(body: dict) -> str | None:
    """The project id of a webhook: `project` is an object or an id; annotations and tasks also name it."""
    candidates = [body.get("project")]
    for key in ("annotation", "task"):
        if isinstance(body.get(key), dict):
            candidates.append(body[key].get("project"))
    for value in candidates:
        if isinstance(value, dict):
            value = value.get("id")
        if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
            return str(value).strip()
    return None


def create_app(service: Service) -> Flask:
    """The backend's Flask app: the protocol's routes over one Service, behind auth, metrics and JSON errors."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = service.settings.max_request_mb * 1024 * 1024
    app.extensions["labelloop"] = service
    _guard(app, service.settings)
    _measure(app, service.metrics)
    _answer_errors(app, service.settings)
    app.register_blueprint(routes)
    return app


# Label Studio checks /health before it knows whether to send credentials; everything else needs them.
OPEN_ROUTES = {"/health", "/"}


def _guard(app: Flask, settings: Settings) -> None:
    """HTTP basic auth on every route but OPEN_ROUTES, when BASIC_AUTH_USER is set."""

    @app.before_request
    def _authenticate():
        if not settings.basic_auth_user or request.path in OPEN_ROUTES:
            return None
        given = request.authorization
        user = (given.username or "") if given and given.type == "basic" else ""
        password = (given.password or "") if given and given.type == "basic" else ""
        # Both compared in constant time, and both always compared, so timing tells nothing about either.
        user_ok = hmac.compare_digest(user.encode(), settings.basic_auth_user.encode())
        pass_ok = hmac.compare_digest(password.encode(), settings.basic_auth_pass.encode())
        if user_ok and pass_ok:
            return None
        answer = jsonify(error="authentication required: HTTP basic auth (BASIC_AUTH_USER / BASIC_AUTH_PASS)")
        answer.status_code = 401
        answer.headers["WWW-Authenticate"] = 'Basic realm="labelloop"'
        return answer


def _measure(app: Flask, metrics: Metrics) -> None:
    """Every request counted by route and status, and timed."""

    @app.before_request
    def _start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _count(response: Response) -> Response:
        route = request.url_rule.rule if request.url_rule else "unknown"
        metrics.requests.labels(route, str(response.status_code)).inc()
        if "started" in g:
            metrics.latency.labels(route).observe(time.perf_counter() - g.started)
        return response


def _answer_errors(app: Flask, settings: Settings) -> None:
    """Every error as JSON {"error": ...} with its status; a traceback only in the log."""

    @app.errorhandler(LabelloopError)
    def _labelloop_error(e: LabelloopError):
        if e.http_status >= 500:  # the backend's side: the log keeps the details
            log.warning("%s on %s: %s", type(e).__name__, request.path, e)
        return jsonify(error=str(e)), e.http_status

    @app.errorhandler(HTTPException)
    def _http_error(e: HTTPException):
        message: dict[int | None, str] = {
            413: f"the request is larger than {settings.max_request_mb} MB (MAX_REQUEST_MB)"
        }
        return jsonify(error=message.get(e.code, e.description or e.name)), e.code

    @app.errorhandler(Exception)
    def _unexpected(e: Exception):
        log.exception("unexpected error on %s", request.path)
        return jsonify(error="internal error; the backend log has the details"), 500


# ---------------------------------------------------------------- the routes: parse, call the service, answer

routes = Blueprint("protocol", __name__)


def _service() -> Service:
    return current_app.extensions["labelloop"]


def _schema(service: Service, body: dict, key: str, project: str | None) -> schemas.Config:
    config = body.get(key)
    if config is None:
        if project in service.schemas:
            return service.schemas[project]
        raise ApiError(400, f"'{key}' is missing: send the project's labeling config")
    if not isinstance(config, str):
        raise ApiError(400, f"'{key}' must be the labeling config as an XML string")
    try:
        parsed = schemas.parse_config(config)
    except schemas.SchemaError as e:
        raise ApiError(422, str(e)) from None
    if project:
        service.schemas[project] = parsed
    return parsed


def _check_servable(service: Service, schema: schemas.Config) -> None:
    """A 503 while the model loads (NotReady); a 422 for a config the LLM cannot serve (CalibrationError), before
    anything else happens."""
    service.predictor().version(schema)


@routes.get("/health")
@routes.get("/")
def health():
    service = _service()
    if service.ready:
        return jsonify(status="UP", model_class="LLMTextClassifier", model_ready=True)
    status = "ERROR" if service.error else "LOADING"
    return jsonify(status=status, model_ready=False, error=service.error), 503


@routes.post("/setup")
def setup():
    service = _service()
    body = _json_body()
    project = _project_key(body.get("project"))
    schema = _schema(service, body, "schema", project)
    _check_servable(service, schema)
    extra = body.get("extra_params") or {}
    if not isinstance(extra, dict):
        raise ApiError(400, '\'extra_params\' must be a JSON object, e.g. {"strategy": "margin"}')
    for key, apply in (("strategy", service.loop.set_strategy), ("lanes", service.loop.set_lanes)):
        if key in extra:
            if not project:
                raise ApiError(400, f"'{key}' is set per project: send 'project' with 'extra_params'")
            apply(project, extra[key])
    service.loop.connected(project, schema)
    _, version = service.loop.serving(project, schema)
    service.metrics.model_version.labels(version).set(1)
    for name, reason in schema.left_out:
        log.info("project %s: %s is not pre-filled: %s", project or "-", name, reason)
    return jsonify(model_version=version)


@routes.post("/predict")
def predict():
    service = _service()
    body = _json_body()
    tasks = body.get("tasks")
    if tasks is None:
        raise ApiError(400, '\'tasks\' is missing: send {"tasks": [...], "label_config": "<View>..."}')
    if not isinstance(tasks, list):
        raise ApiError(400, "'tasks' must be a list of task objects")
    if len(tasks) > service.settings.max_tasks:
        raise ApiError(413, f"{len(tasks)} tasks in one request; the limit is {service.settings.max_tasks} (MAX_TASKS)")
    project = _project_key(body.get("project"))
    schema = _schema(service, body, "label_config", project)
    _check_servable(service, schema)
    results, skipped, version = service.loop.predict(project, schema, tasks)
    service.metrics.predictions.inc(len(tasks) - len(skipped))
    service.metrics.skipped.inc(len(skipped))
    service.metrics.model_version.labels(version).set(1)
    answer: dict[str, Any] = {"results": results, "model_version": version}
    if skipped:
        answer["skipped"] = skipped
    return jsonify(answer)


@routes.post("/webhook")
def webhook():
    service = _service()
    body = _json_body()
    if not isinstance(body.get("action"), str):
        raise ApiError(400, "'action' is missing: a Label Studio webhook names its action")
    event = service.events.record(body)
    service.metrics.events.labels(event["action"]).inc()
    answer = {"status": "ok", "action": event["action"]}
    if event["action"] in TRAINING_ACTIONS:
        project = _webhook_project(body)
        if project is None:
            raise ApiError(400, f"a {event['action']} webhook must name its project (project.id)")
        try:
            answer["training"] = service.loop.request_training(project, event["task"])
        except LoopError as e:
            if event["action"] == "START_TRAINING":
                raise  # asked for by a person: the error is the answer
            # Annotation saves still succeed in Label Studio; the answer (and the log) say why nothing trains.
            log.warning("no training for project %s: %s", project, e)
            answer["training"] = f"disabled: {e}"
    return jsonify(answer)


@routes.get("/versions")
def versions():
    service = _service()
    project = request.args.get("project", "").strip()
    if not project:
        return jsonify(versions=service.llm_versions())
    if not project.isdigit():
        raise ApiError(400, "'project' must be a Label Studio project id")
    return jsonify(service.project_state(project))


def _html(body: str) -> Response:
    return Response(body, mimetype="text/html")


@routes.get("/ui")
def index():
    service = _service()
    summaries = [page.summarise(p, service.project_state(p)) for p in service.known_projects()]
    return _html(page.render_index(summaries))


@routes.get("/projects/<project>")
def project_page(project: str):
    service = _service()
    key = _project_key(project)
    if key is None or key != project:
        raise ApiError(400, f"{project!r} is not a Label Studio project id")
    if project not in service.known_projects():
        raise ApiError(
            404, f"project {project} is not known to this backend: connect it (labelloop sync-project connect)"
        )
    summary = page.summarise(project, service.project_state(project))
    return _html(page.render_project(summary, service.settings.label_studio_url))


@routes.get("/metrics")
def prometheus():
    metrics = _service().metrics
    return Response(metrics.render(), mimetype=metrics.content_type)
