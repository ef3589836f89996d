"""The project at a glance for a team lead: an HTML page per project and an index, drawn by the server.

Every figure comes from the state /versions?project= answers (Service.project_state): the training runs' records
(each question's cross-validated macro-F1, the LLM's on the same labels, the labels the model doubts, each
annotator's gold answers, the "Label issues" tab) and the pool's coverage from the newest re-score. Nothing here
runs the LLM or reads Label Studio, so a page costs a registry read and a plot.

Links are relative (`projects/3` from the index, `../ui` back), so the pages work behind a proxy's path prefix
without knowing it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from jinja2 import Environment

from backend.loop.projects import QuestionRecord, TrainingRecord, serving_score
from backend.loop.routing import DEFAULT_TARGET, Coverage, ThresholdRecord, serving_rule

if TYPE_CHECKING:  # a type alone: the page is drawn without the service's model
    from backend.loop.project_loop import CalibrationRecord
    from backend.serving.service import LeftOut, ProjectState

# One colour per question, in the config's order (matplotlib's default cycle, so the plot and the table agree).
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


@dataclass(frozen=True)
class Point:
    """One training run as a question's learning curve reads it."""

    labels: int
    serving: float  # macro-F1 of what served the question after the run, on the run's labels (cross-validated)
    llm: float | None  # the LLM alone on the same labels
    promoted: bool


@dataclass
class QuestionSummary:
    name: str
    colour: str
    labels: tuple[str, ...] = ()
    multiple: bool = False
    model: str | None = None  # the trained model's version that serves it; None: the LLM alone
    recipe: str | None = None  # the newest run's choice
    pseudo_labels: int | None = None  # what the newest run's model was self-trained on beyond the labels
    score: float | None = None  # what serves it now, as the newest run measured it
    zero_shot: float | None = None  # the LLM alone on the first run's labels: where the project started
    points: list[Point] = field(default_factory=list)
    label_issues: int | None = None  # labels the model doubts at the newest run


@dataclass
class ProjectSummary:
    project: str
    current: str | None
    strategy: str
    lanes: int
    busy: bool
    runs: int  # training runs recorded, skipped ones included
    latest: TrainingRecord | None  # the newest run's record
    questions: list[QuestionSummary]
    left_out: list[LeftOut]
    finish: (
        Coverage | ThresholdRecord | None
    )  # the pool's coverage (routing.pool_coverage), else the newest run's threshold
    finish_measured_on_pool: bool
    gold: list[dict[str, Any]]
    review_tab: dict[str, Any] | None
    calibration: CalibrationRecord | None


def _questions_of(record: TrainingRecord) -> Mapping[str, QuestionRecord]:
    # A record written before every question learned has its one question's figures at the top level.
    questions = record.get("questions")
    return questions if isinstance(questions, dict) else {"": record}


def summarise(project: str, state: ProjectState) -> ProjectSummary:
    """The page's figures from a project's /versions state."""
    records = [r for r in state.get("training") or [] if isinstance(r, dict)]
    config = state.get("questions")
    filled = {q["name"]: q for q in (config["filled"] if config else [])}
    names = list(filled) or list(dict.fromkeys(n for r in records for n in _questions_of(r)))
    questions = []
    for i, name in enumerate(names):
        q = QuestionSummary(name or "(first question)", COLOURS[i % len(COLOURS)])
        if name in filled:
            q.labels, q.multiple, q.model = (
                tuple(filled[name]["labels"]),
                filled[name]["multiple"],
                filled[name]["model"],
            )
        for record in records:
            sub = _questions_of(record).get(name) or (_questions_of(record).get("") if i == 0 else None)
            score = serving_score(sub)
            if sub is None or score is None:
                continue
            q.points.append(Point(int(sub["labels"]), score, sub.get("llm_macro_f1"), sub["result"] == "promoted"))
            q.recipe, q.score, q.label_issues = sub.get("recipe"), score, sub.get("label_issues")
            q.pseudo_labels = sub["self_training"]["pseudo_labels"] if "self_training" in sub else None
        q.zero_shot = q.points[0].llm if q.points else None
        questions.append(q)
    latest = records[-1] if records else None
    coverage = state.get("coverage")
    return ProjectSummary(
        project=project,
        current=state.get("current"),
        strategy=state.get("strategy") or "",
        lanes=int(state.get("lanes") or 1),
        busy=bool(state.get("busy")),
        runs=len(records),
        latest=latest,
        questions=questions,
        left_out=list(config["left_out"]) if config else [],
        # Before a re-score measured the pool: the serving run's threshold, without the share it would take.
        finish=coverage if coverage else serving_rule(records, state.get("current")),
        finish_measured_on_pool=bool(coverage),
        gold=next((r["gold"] for r in reversed(records) if r.get("gold")), []),
        review_tab=next((r["review_tab"] for r in reversed(records) if "review_tab" in r), None),
        calibration=state.get("calibration"),
    )


def learning_svg(questions: list[QuestionSummary]) -> str:
    """Each question's macro-F1 against the number of labels, the LLM alone dashed: an inline SVG."""
    # The object API on its own canvas: no pyplot state shared between the server's threads.
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.2, 3.4))
    canvas = FigureCanvasSVG(fig)
    ax = fig.add_subplot()
    for q in questions:
        if not q.points:
            continue
        x = [p.labels for p in q.points]
        ax.plot(x, [p.serving for p in q.points], "-", color=q.colour, label=f"{q.name}: serving")
        ax.plot(
            [p.labels for p in q.points if p.promoted],
            [p.serving for p in q.points if p.promoted],
            "o",
            color=q.colour,
            markersize=4,
        )
        llm = [(p.labels, p.llm) for p in q.points if p.llm is not None]
        if llm:
            ax.plot(*zip(*llm), "--", color=q.colour, alpha=0.6, label=f"{q.name}: the LLM alone")
    ax.set_xlabel("labels")
    ax.set_ylabel("cross-validated macro-F1")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    out = io.StringIO()
    canvas.print_svg(out)
    svg = out.getvalue()
    return svg[svg.index("<svg") :]  # inline: no XML declaration or doctype


_ENV = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
_ENV.filters["f3"] = lambda v: "–" if v is None else f"{v:.3f}"
_ENV.filters["pct"] = lambda v: "–" if v is None else f"{100 * v:.0f}%"

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 1.5rem auto; max-width: 60rem; padding: 0 1rem; color: #222 }
h1 { font-size: 1.5rem; margin-bottom: .2rem } h2 { font-size: 1.1rem; margin-top: 1.6rem }
table { border-collapse: collapse; margin: .4rem 0 } td, th { padding: .25rem .7rem; text-align: left;
border-bottom: 1px solid #ddd } th { font-weight: 600 } .num { text-align: right; font-variant-numeric: tabular-nums }
.muted { color: #666 } .flag { color: #b00020; font-weight: 600 } .swatch { display: inline-block; width: .8rem;
height: .8rem; border-radius: 2px; margin-right: .3rem; vertical-align: -1px } svg { max-width: 100%; height: auto }
"""

_INDEX = _ENV.from_string(
    """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>labelloop: projects</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{{ style }}</style></head><body>
<h1>Projects</h1><p class="muted">Every project this backend holds; a project's page shows its learning curve,
what finishing would give now and where to look.</p>
{% if projects %}
<table><tr><th>project</th><th>serving</th><th class="num">training runs</th><th>latest run</th><th>questions</th></tr>
{% for p in projects %}
<tr><td><a href="projects/{{ p.project }}">project {{ p.project }}</a></td><td>{{ p.current or "the LLM alone" }}</td>
<td class="num">{{ p.runs }}</td><td>{{ (p.latest or {}).get("created") or "–" }}</td>
<td>{% for q in p.questions %}{{ q.name }} {{ q.score | f3 }}{% if not loop.last %}, {% endif %}{% endfor %}</td></tr>
{% endfor %}
</table>
{% else %}
<p>No project yet: connect one with <code>labelloop sync-project connect</code>.</p>
{% endif %}
</body></html>"""
)

_PROJECT = _ENV.from_string(
    """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>labelloop: project {{ p.project }}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{{ style }}</style></head><body>
<p><a href="../ui">all projects</a>{% if ls %} · <a href="{{ ls }}/projects/{{ p.project }}/data">open in Label Studio</a>{% endif %}</p>
<h1>Project {{ p.project }}</h1>
<p class="muted">Serving <b id="current">{{ p.current or "the LLM alone" }}</b> · {{ p.runs }} training run{{ "" if p.runs == 1 else "s" }}
{% if p.latest %} · latest <span id="latest-created">{{ p.latest.get("created") or "–" }}</span>:
<span id="latest-result">{{ p.latest.get("result") }}</span> on {{ p.latest.get("labels") }} labels
{% if p.latest.get("seconds") is not none %} in {{ "%.1f" | format(p.latest.get("seconds")) }} s{% endif %}{% endif %}
{% if p.busy %} · <b>training or re-scoring now</b>{% endif %}</p>

<h2>Questions</h2>
<table id="questions"><tr><th>question</th><th>answered by</th><th>recipe</th><th class="num">macro-F1 now</th>
<th class="num">zero-shot</th><th class="num">labels the model doubts</th></tr>
{% for q in p.questions %}
<tr data-question="{{ q.name }}"><td><span class="swatch" style="background: {{ q.colour }}"></span>{{ q.name }}
{% if q.multiple %}<span class="muted">(multi-label)</span>{% endif %}</td>
<td>{{ q.model or "the LLM" }}</td><td>{{ q.recipe or "–" }}
{%- if q.pseudo_labels %} <span class="muted">+ {{ q.pseudo_labels }} pseudo-labels</span>{% endif %}</td><td class="num score">{{ q.score | f3 }}</td>
<td class="num">{{ q.zero_shot | f3 }}</td><td class="num issues">{{ "–" if q.label_issues is none else q.label_issues }}</td></tr>
{% endfor %}
</table>
{% if p.left_out %}<p class="muted">Left to annotators: {% for q in p.left_out %}{{ q.name }}{% if not loop.last %}, {% endif %}{% endfor %}.</p>{% endif %}

<h2>Learning curve</h2>
{% if plot %}<figure id="learning-curve">{{ plot | safe }}</figure>
<p class="muted">Each run's macro-F1 of what serves the question, cross-validated on the labels of that run (dots:
a new model promoted); dashed, the LLM alone on the same labels.</p>
{% else %}<p>No training run has scored a question yet: the curve starts with the first labels.</p>{% endif %}

<h2>Finishing now</h2>
{% set f = p.finish %}
{% if f and f.get("threshold") is not none %}
<p id="finish">At the {{ f.get("target") | pct }} target the model may label the tasks it answers with confidence
&ge; {{ f.get("threshold") | f3 }} (accuracy {{ f.get("accuracy") | f3 }} on {{ f.get("support") }} labels above it,
lower bound {{ f.get("lower_bound") | f3 }}).
{% if p.finish_measured_on_pool %} That is <b id="finish-share">{{ f.get("share") | pct }}</b> of the
{{ f.get("unlabeled") }} open tasks ({{ f.get("model_can_label") }}).{% else %} Its share of the pool is
measured at the next re-score.{% endif %}
<span class="muted">An estimate from the labels so far; <code>labelloop finish</code> audits before it promises.</span></p>
{% else %}
<p id="finish">No threshold reaches the {{ target | pct }} target on the labels so far: people label everything for
now.</p>
{% endif %}

<h2>Labels to review</h2>
{% set doubted = p.questions | selectattr("label_issues") | map(attribute="label_issues") | sum %}
<p id="review">The newest run doubts <b>{{ doubted }}</b> label{{ "" if doubted == 1 else "s" }}.
{% if p.review_tab %} The {% if ls %}<a id="review-link" href="{{ ls }}/projects/{{ p.project }}/data?tab={{ p.review_tab.id }}">Label
issues tab</a>{% else %}Label issues tab{% endif %} holds {{ p.review_tab.tasks }} task{{ "" if p.review_tab.tasks == 1 else "s" }}.
{% else %} <code>labelloop label-issues --project {{ p.project }} --review</code> puts them in a Label Studio tab.{% endif %}</p>

<h2>Annotators on the gold tasks</h2>
{% if p.gold %}
<table id="gold"><tr><th>annotator</th><th class="num">gold answers</th><th class="num">accuracy</th>
<th class="num">latest window</th><th>drift</th></tr>
{% for a in p.gold %}
<tr><td>{{ a.annotator }}</td><td class="num">{{ a.n_gold }}</td><td class="num">{{ a.accuracy | f3 }}</td>
<td class="num">{{ a.latest_window | f3 }}</td>
<td>{% if a.flagged %}<span class="flag">flagged</span>: {{ a.reasons | join("; ") }}{% else %}no{% endif %}</td></tr>
{% endfor %}
</table>
{% else %}<p>No gold answers yet.</p>{% endif %}

<h2>Queue</h2>
<p id="queue">Strategy <b>{{ p.strategy }}</b>, {{ p.lanes }} lane{{ "" if p.lanes == 1 else "s" }}{% if p.finish_measured_on_pool %},
<span id="tasks-left">{{ p.finish.get("unlabeled") }}</span> tasks without a label{% endif %}.
{% if p.calibration %}<span class="muted">Calibration: {{ p.calibration.get("methods") | join(", ") }}; {{ p.calibration.get("reason") }}.</span>{% endif %}</p>
</body></html>"""
)


def render_index(projects: list[ProjectSummary]) -> str:
    return _INDEX.render(projects=projects, style=_STYLE)


def render_project(summary: ProjectSummary, label_studio_url: str = "") -> str:
    plot = learning_svg(summary.questions) if any(q.points for q in summary.questions) else ""
    return _PROJECT.render(p=summary, plot=plot, ls=label_studio_url, style=_STYLE, target=DEFAULT_TARGET)
