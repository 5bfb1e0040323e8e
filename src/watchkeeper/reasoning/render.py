"""Render a :class:`~.report_model.Report` as JSON, Markdown, HTML or PDF.

* JSON is the model itself (indent 2), complete on its own: pictures travel as base64 JPEG.
* Markdown is for a terminal or a ticket: the same content as the HTML, without pictures or charts.
* HTML is one self-contained page: inline CSS (``data/report/report.css``), pictures and charts as
  data URLs, no external fonts, scripts or CDN (sites run offline). Every piece of text is escaped:
  transcripts carry words from the street.
* PDF is the same HTML laid out by WeasyPrint (real, extractable text). WeasyPrint may fetch nothing
  but ``data:`` URLs.

Charts are drawn with matplotlib's object-oriented ``Figure`` API on the Agg/SVG canvases, never
pyplot's global state, so several threads may render at once. Missing pieces (no incidents, no
pictures, no timeline, no assessment) never fail a render: the report says what is not there.
"""

from __future__ import annotations

import base64
import binascii
import html
import io
import re
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources
from typing import Literal

from ..domain import Assessment, Verification
from ..errors import BadRequestError, ConfigError
from ..taxonomy import SEVERITY_COLORS, SEVERITY_LABELS
from .report_model import SECTION_TITLES, EvidenceLine, IncidentPart, Report, TimelineEntry

Format = Literal["json", "markdown", "html", "pdf"]
FORMATS: tuple[str, ...] = ("json", "markdown", "html", "pdf")

# Seed 001's overall scores, in the order the report shows them.
ASSESSMENT_SCORES: dict[str, str] = {
    "visual_score": "Visual score",
    "audio_score": "Audio score",
    "text_alignment_score": "Text alignment score",
    "multimodal_agreement": "Multimodal agreement",
    "threat_severity_index": "Threat severity index",
}
# Peak scores below this are noise, not worth a bar.
MIN_CHART_SCORE = 0.05
QUIET_TEXT = "No incidents were detected: this was a quiet analysis."
_HEX_COLOR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_NEUTRAL = "#6b7280"


def render(report: Report, fmt: Format) -> bytes:
    """The report in ``fmt``, as bytes (UTF-8 for the text formats)."""
    if fmt == "json":
        return render_json(report)
    if fmt == "markdown":
        return render_markdown(report).encode("utf-8")
    if fmt == "html":
        return render_html(report).encode("utf-8")
    if fmt == "pdf":
        return render_pdf(report)
    raise BadRequestError(f"unknown report format {fmt!r}; expected one of {', '.join(FORMATS)}")


# --------------------------------------------------------------------------------------------- helpers


def fmt_time(t_s: float | None) -> str:
    """Seconds as ``m:ss.s`` (``h:mm:ss`` past an hour): compact and sortable by eye."""
    if t_s is None:
        return ""
    sign = "-" if t_s < 0 else ""
    t = abs(float(t_s))
    if t >= 3600:
        h, rem = divmod(int(round(t)), 3600)
        m, s = divmod(rem, 60)
        return f"{sign}{h}:{m:02d}:{s:02d}"
    m, s = divmod(t, 60)
    return f"{sign}{int(m)}:{s:04.1f}"


def fmt_span(t_start_s: float, t_end_s: float) -> str:
    if abs(t_end_s - t_start_s) < 0.05:
        return fmt_time(t_start_s)
    return f"{fmt_time(t_start_s)}–{fmt_time(t_end_s)}"


def fmt_score(x: float | None) -> str:
    return "" if x is None else f"{x:.2f}"


def fmt_percent(x: float) -> str:
    return f"{100 * x:.1f}%"


def severity_color(severity: int, color: str | None = None) -> str:
    """A CSS-safe hex colour: the incident's own when it is one, else the taxonomy's."""
    if color and _HEX_COLOR.match(color.strip()):
        return color.strip()
    return SEVERITY_COLORS.get(severity, _NEUTRAL)


def text_color_on(background: str) -> str:
    """Dark or white text, whichever reads better on ``background`` (a #rgb or #rrggbb colour)."""
    h = background.lstrip("#")
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    try:
        r, g, b = (int(h[i : i + 2], 16) / 255 for i in (0, 2, 4))
    except ValueError:
        return "#ffffff"

    def lin(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    luminance = 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)
    return "#111827" if luminance > 0.35 else "#ffffff"


def category_name(report: Report, category_id: str) -> str:
    return report.category_names.get(category_id) or category_id


def highest_incident(report: Report) -> IncidentPart | None:
    if not report.incidents:
        return None
    return max(report.incidents, key=lambda i: (i.severity, i.confidence))


def picture_bytes(jpeg_base64: str) -> bytes | None:
    """The picture's JPEG bytes, or None when the base64 is not valid (it is then left out)."""
    try:
        data = base64.b64decode(jpeg_base64, validate=True)
    except (binascii.Error, ValueError):
        return None
    return data or None


def _chart_scores(report: Report) -> tuple[str, dict[str, float]]:
    """What the breakdown chart shows: incidents per category, else the peak scores worth a bar."""
    if report.category_breakdown:
        return "incidents", {k: float(v) for k, v in report.category_breakdown.items()}
    peaks = {category_name(report, k): v for k, v in report.scores.items() if v > MIN_CHART_SCORE}
    return "scores", peaks


# ---------------------------------------------------------------------------------------------- JSON


def render_json(report: Report) -> bytes:
    return report.model_dump_json(indent=2).encode("utf-8")


# ------------------------------------------------------------------------------------------ Markdown


_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")


def _md_text(value: object) -> str:
    """Text as Markdown shows it: a ``<`` that could open an HTML tag is escaped (transcripts come from the
    street, and a Markdown viewer would pass raw HTML through); the rest stays readable in a terminal."""
    return _TAG_START.sub(r"\\<", str(value))


def _md_cell(value: object) -> str:
    """Text fit for one Markdown table cell: one line, pipes escaped."""
    return _md_text(" ".join(str(value).split())).replace("|", "\\|")


def _md_table(header: list[str], rows: Iterable[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return lines + [""]


def _md_kv(pairs: dict[str, object]) -> list[str]:
    return [f"- **{_md_cell(k)}:** {_md_cell(v)}" for k, v in pairs.items()] + [""]


def _md_entries(title: str, entries: list[TimelineEntry], empty: str) -> list[str]:
    lines = [f"## {title}", ""]
    if not entries:
        return lines + [f"_{empty}_", ""]
    return lines + _md_table(["Time", "What"], ([fmt_time(e.t_s), e.what] for e in entries))


def verification_facts(v: Verification) -> dict[str, object]:
    """The verification's facts worth showing, in the order both renderings show them."""
    facts: dict[str, object] = {"Verifier": v.verifier}
    if v.agrees is not None:
        facts["Agrees"] = "yes" if v.agrees else "no"
    if v.final_category:
        facts["Final category"] = v.final_category
    if v.final_severity is not None:
        facts["Final severity"] = f"{v.final_severity} {SEVERITY_LABELS.get(v.final_severity, '')}".strip()
    return facts


def _md_verification(v: Verification) -> list[str]:
    lines = [f"#### Verification: {v.verdict}", ""]
    lines += _md_kv({**verification_facts(v), "Verdict": v.verdict})
    if v.checks:
        lines += ["Checks:", ""] + [f"- {_md_text(c)}" for c in v.checks] + [""]
    if v.rule:
        lines += [f"**Rule:** {_md_text(v.rule)}", ""]
    if v.decision:
        lines += [f"**Decision:** {_md_text(v.decision)}", ""]
    return lines


def _md_incident(n: int, inc: IncidentPart) -> list[str]:
    lines = [f"## Incident {n}: {_md_text(inc.category_name)}", ""]
    lines += [f"**Severity {inc.severity} – {_md_text(inc.severity_label)}** · confidence {fmt_percent(inc.confidence)}"
              + (" · **immediate action required**" if inc.requires_immediate_action else ""), ""]
    lines += [_md_text(inc.summary), ""] if inc.summary else []
    facts: dict[str, object] = {"Category": f"{inc.category_name} ({inc.category})",
                                "Time": fmt_span(inc.t_start_s, inc.t_end_s), "Status": inc.status}
    for key, value in (("Incident", inc.incident_id), ("Camera", inc.camera), ("Zone", inc.zone),
                       ("Location", inc.location)):
        if value:
            facts[key] = value
    lines += _md_kv(facts)
    sections = inc.sections.model_dump()
    for key, title in SECTION_TITLES.items():
        value = sections.get(key)
        lines += [f"### {title}", ""]
        if isinstance(value, list):
            lines += ([f"{i}. {_md_text(item)}" for i, item in enumerate(value, 1)] if value
                      else ["_None listed._"]) + [""]
        else:
            lines += [_md_text(value) if value else "_Not stated._", ""]
    lines += ["#### Evidence", ""]
    if inc.evidence:
        lines += _md_table(["Modality", "Label", "Score", "Time", "Contribution"],
                           ([e.modality, e.label + (f" ({e.analyzer})" if e.analyzer else ""), fmt_score(e.score),
                             fmt_span(e.t_start_s, e.t_end_s), fmt_score(e.contribution) or "–"] for e in inc.evidence))
    else:
        lines += ["_No evidence lines._", ""]
    if inc.transcript_excerpts:
        lines += ["#### Transcript excerpts", ""]
        for excerpt in inc.transcript_excerpts:
            lines += ["> " + _md_text(" ".join(excerpt.split())), ""]
    if inc.pictures:
        lines += ["#### Pictures", ""] + [f"- {_md_text(p.caption or 'picture')} (JPEG in the JSON and HTML forms)"
                                          for p in inc.pictures] + [""]
    if inc.links:
        lines += ["#### Links", ""] + [f"- {_md_text(name)}: <{url.strip()}>" for name, url in inc.links.items()] + [""]
    if inc.verification is not None:
        lines += _md_verification(inc.verification)
    return lines


def _md_assessment(a: Assessment | None) -> list[str]:
    lines = ["## Overall assessment", ""]
    if a is None:
        return lines + ["_No overall assessment was made._", ""]
    verdict = "Incident detected" if a.crime_detected else "Nothing detected"
    head = f"**{verdict}**"
    if a.category:
        head += f" · category {_md_text(a.category)}"
    head += f" · severity {a.severity} {SEVERITY_LABELS.get(a.severity, '')} · confidence {fmt_percent(a.confidence)}"
    lines += [head, ""]
    lines += _md_table(["Score", "Value"],
                       ([title, fmt_score(getattr(a, key))] for key, title in ASSESSMENT_SCORES.items()))
    lines += [f"**Reasoning summary:** {_md_text(a.reasoning_summary)}", ""]
    if a.evidence_description:
        lines += [f"**Evidence:** {_md_text(a.evidence_description)}", ""]
    if a.location:
        lines += [f"**Location:** {_md_text(a.location)}", ""]
    lines += [f"_Assessed by: {_md_text(a.source)}_", ""]
    return lines


def render_markdown(report: Report) -> str:
    lines = [f"# {_md_text(report.title)}", ""]
    lines += [f"_{report.kind.capitalize()} report · generated {report.generated_at.isoformat(timespec='seconds')}"
              f" · written by {_md_text(report.written_by)}_", ""]
    top = highest_incident(report)
    if top is not None:
        n = len(report.incidents)
        lines += [f"**Highest severity: {top.severity} – {_md_text(top.severity_label)}** "
                  f"({_md_text(top.category_name)}) · {n} incident{'s' if n != 1 else ''}", ""]
    if report.subject:
        lines += ["## Subject", ""] + _md_kv(dict(report.subject))
    if report.context:
        lines += ["## Context", ""] + _md_kv(dict(report.context))
    if not report.incidents:
        lines += ["## Incidents", "", f"**{QUIET_TEXT}**", ""]
    for n, inc in enumerate(report.incidents, 1):
        lines += _md_incident(n, inc)
    lines += _md_assessment(report.assessment)
    lines += ["## Category scores", ""]
    if report.scores:
        ordered = sorted(report.scores.items(), key=lambda kv: -kv[1])
        lines += _md_table(["Category", "Peak score"], ([category_name(report, k), fmt_score(v)] for k, v in ordered))
    else:
        lines += ["_No category scored._", ""]
    if report.category_breakdown:
        lines += ["## Incidents per category", ""]
        lines += _md_table(["Category", "Incidents"], ([k, v] for k, v in report.category_breakdown.items()))
    if report.statistics:
        lines += ["## Statistics", ""] + _md_kv({k: "–" if v is None else v for k, v in report.statistics.items()})
    lines += _md_entries("Timeline", report.timeline, "No timeline.")
    lines += _md_entries("Transcript", report.transcript, "No speech was transcribed.")
    lines += _md_entries("Audio events", report.audio_events, "No audio events.")
    if report.notes:
        lines += ["## Notes", ""] + [f"- {_md_text(n)}" for n in report.notes] + [""]
    return "\n".join(lines).rstrip() + "\n"


# -------------------------------------------------------------------------------------------- charts

_CHART_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                 "#7f7f7f", "#bcbd22")


def _new_figure(width_in: float, height_in: float):
    # Imported here (matplotlib is slow to import). A Figure on its own Agg canvas: no pyplot, no global
    # state, so threads may draw at once; savefig(format="svg") switches to the SVG canvas for the output.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _style_axes(ax) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color("#9ca3af")
    ax.tick_params(colors="#374151", labelsize=9)
    ax.grid(True, color="#e5e7eb", linewidth=0.8)
    ax.set_axisbelow(True)


def _svg_data_url(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None}, facecolor="white")
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def score_timeline_chart(report: Report) -> str | None:
    """Lines of each category's score over seconds, as an SVG data URL; None without a timeline."""
    series = {k: sorted(v) for k, v in report.score_timeline.items() if v}
    if not series:
        return None
    fig = _new_figure(7.5, 2.9)
    ax = fig.add_subplot()
    _style_axes(ax)
    for inc in report.incidents:
        if inc.t_end_s > inc.t_start_s:
            ax.axvspan(inc.t_start_s, inc.t_end_s, color=severity_color(inc.severity, inc.severity_color),
                       alpha=0.12, linewidth=0)
    ordered = sorted(series.items(), key=lambda kv: -max(s for _, s in kv[1]))
    for i, (cid, points) in enumerate(ordered):
        xs = [p[0] for p in points]
        ys = [p[1] for p in points]
        ax.plot(xs, ys, label=category_name(report, cid), color=_CHART_COLORS[i % len(_CHART_COLORS)],
                linewidth=1.8, marker="o" if len(points) <= 30 else None, markersize=3.5)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("Seconds", fontsize=9, color="#374151")
    ax.set_ylabel("Score", fontsize=9, color="#374151")
    ax.set_title("Score timeline per category", fontsize=11, color="#1e3a5f", loc="left")
    ax.legend(fontsize=8.5, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _svg_data_url(fig)


def category_breakdown_chart(report: Report) -> str | None:
    """Horizontal bars: incidents per category, else peak scores above 0.05; None when there is nothing."""
    what, values = _chart_scores(report)
    if not values:
        return None
    items = sorted(values.items(), key=lambda kv: kv[1])  # largest on top
    fig = _new_figure(7.5, 0.9 + 0.32 * len(items))
    ax = fig.add_subplot()
    _style_axes(ax)
    ax.grid(False, axis="y")
    names = [k for k, _ in items]
    nums = [v for _, v in items]
    bars = ax.barh(names, nums, color="#1e3a5f", height=0.5)
    if what == "incidents":
        ax.set_title("Incidents per category", fontsize=11, color="#1e3a5f", loc="left")
        ax.set_xlabel("Incidents", fontsize=9, color="#374151")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.bar_label(bars, labels=[f"{int(v)}" for v in nums], padding=3, fontsize=8.5, color="#374151")
        ax.set_xlim(0, max(nums) * 1.12 + 0.5)
    else:
        ax.set_title("Peak score per category", fontsize=11, color="#1e3a5f", loc="left")
        ax.set_xlabel("Peak score", fontsize=9, color="#374151")
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in nums], padding=3, fontsize=8.5, color="#374151")
        ax.set_xlim(0, 1.1)
    return _svg_data_url(fig)


# ---------------------------------------------------------------------------------------------- HTML


@lru_cache(maxsize=1)
def _css() -> str:
    return (resources.files("watchkeeper") / "data" / "report" / "report.css").read_text(encoding="utf-8")


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _badge(severity: int, label: str, color: str | None, large: bool = False) -> str:
    bg = severity_color(severity, color)
    cls = "badge badge-large" if large else "badge"
    return (f'<span class="{cls}" style="background:{bg};color:{text_color_on(bg)}">'
            f"{_e(severity)} · {_e(label)}</span>")


def _kv_table(pairs: dict[str, object]) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in pairs.items())
    return f'<table class="kv">{rows}</table>'


def _data_table(header: list[tuple[str, str]], rows: Iterable[list[tuple[str, str]]]) -> str:
    """``header`` and cells are (text, css class); cell text is escaped here."""
    head = "".join(f'<th class="{c}">{_e(t)}</th>' for t, c in header)
    body = "".join("<tr>" + "".join(f'<td class="{c}">{_e(t)}</td>' for t, c in row) + "</tr>" for row in rows)
    return f'<table class="data"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _score_bar(x: float) -> str:
    pct = max(0.0, min(1.0, float(x))) * 100
    return f'<span class="bar"><span style="width:{pct:.0f}%"></span></span>'


def _entries_html(title: str, entries: list[TimelineEntry], empty: str) -> str:
    out = [f"<h2>{_e(title)}</h2>"]
    if not entries:
        out.append(f"<p><em>{_e(empty)}</em></p>")
    else:
        out.append(_data_table([("Time", "time"), ("What", "")],
                               ([(fmt_time(e.t_s), "time"), (e.what, "")] for e in entries)))
    return "".join(out)


def _evidence_html(evidence: list[EvidenceLine]) -> str:
    if not evidence:
        return "<p><em>No evidence lines.</em></p>"
    return _data_table(
        [("Modality", ""), ("Label", ""), ("Score", "num"), ("Time", ""), ("Contribution", "num")],
        ([(e.modality, ""), (e.label + (f" ({e.analyzer})" if e.analyzer else ""), ""), (fmt_score(e.score), "num"),
          (fmt_span(e.t_start_s, e.t_end_s), "time"), (fmt_score(e.contribution) or "–", "num")] for e in evidence))


def _verification_html(v: Verification) -> str:
    pill = {"confirmed": "pill-ok", "disputed": "pill-alert"}.get(v.verdict, "pill-warn")
    facts = verification_facts(v)
    if v.rule:
        facts["Rule"] = v.rule
    if v.decision:
        facts["Decision"] = v.decision
    checks = ("<h4>Checks</h4><ul>" + "".join(f"<li>{_e(c)}</li>" for c in v.checks) + "</ul>") if v.checks else ""
    return (f'<div class="panel verification"><h3>Verification <span class="pill {pill}">{_e(v.verdict)}</span></h3>'
            f"{_kv_table(facts)}{checks}</div>")


def _incident_html(n: int, inc: IncidentPart) -> str:
    color = severity_color(inc.severity, inc.severity_color)
    out = [f'<article class="incident" style="--sev:{color}">',
           f'<div class="incident-head"><h2>Incident {n}: {_e(inc.category_name)}</h2>'
           f"{_badge(inc.severity, inc.severity_label, inc.severity_color, large=True)}</div>"]
    facts = [("Category", f"{inc.category_name} ({inc.category})"), ("Confidence", fmt_percent(inc.confidence)),
             ("Time", fmt_span(inc.t_start_s, inc.t_end_s)), ("Status", inc.status)]
    facts += [(k, v) for k, v in (("Incident", inc.incident_id), ("Camera", inc.camera), ("Zone", inc.zone),
                                  ("Location", inc.location)) if v]
    out.append('<div class="facts">' + "".join(f"<span><b>{_e(k)}</b>{_e(v)}</span>" for k, v in facts)
               + ('<span class="pill pill-alert">Immediate action required</span>' if inc.requires_immediate_action
                  else "") + "</div>")
    if inc.summary:
        out.append(f'<p class="summary">{_e(inc.summary)}</p>')
    out.append('<div class="sections">')
    sections = inc.sections.model_dump()
    for key, title in SECTION_TITLES.items():
        value = sections.get(key)
        out.append(f"<h3>{_e(title)}</h3>")
        if isinstance(value, list):
            out.append("<ol>" + "".join(f"<li>{_e(item)}</li>" for item in value) + "</ol>" if value
                       else "<p><em>None listed.</em></p>")
        else:
            out.append(f"<p>{_e(value)}</p>" if value else "<p><em>Not stated.</em></p>")
    out.append("</div>")
    out.append("<h3>Evidence</h3>" + _evidence_html(inc.evidence))
    if inc.transcript_excerpts:
        out.append("<h3>Transcript excerpts</h3>"
                   + "".join(f"<blockquote>{_e(x)}</blockquote>" for x in inc.transcript_excerpts))
    pictures = [(p.caption, picture_bytes(p.jpeg_base64)) for p in inc.pictures]
    shown = [(cap, data) for cap, data in pictures if data]
    if shown:
        out.append('<h3>Pictures</h3><div class="pictures">')
        for cap, data in shown:
            url = "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")
            out.append(f'<figure><img src="{url}" alt="{_e(cap or "picture")}">'
                       + (f"<figcaption>{_e(cap)}</figcaption>" if cap else "") + "</figure>")
        out.append("</div>")
    if len(shown) < len(pictures):
        out.append(f"<p><em>{len(pictures) - len(shown)} picture(s) could not be decoded and are left out.</em></p>")
    if inc.links:
        items = []
        for name, url in inc.links.items():
            safe = url.strip()
            if safe.lower().startswith(("http://", "https://", "/")):
                items.append(f'<li><a href="{_e(safe)}">{_e(name)}</a> <code>{_e(safe)}</code></li>')
            else:  # javascript:, data: and the like are shown, never linked
                items.append(f"<li>{_e(name)} <code>{_e(safe)}</code></li>")
        out.append('<h3>Links</h3><ul class="links">' + "".join(items) + "</ul>")
    if inc.verification is not None:
        out.append(_verification_html(inc.verification))
    out.append("</article>")
    return "".join(out)


def _assessment_html(a: Assessment | None) -> str:
    out = ["<h2>Overall assessment</h2>"]
    if a is None:
        return out[0] + "<p><em>No overall assessment was made.</em></p>"
    verdict = ('<span class="pill pill-alert">Incident detected</span>' if a.crime_detected
               else '<span class="pill pill-ok">Nothing detected</span>')
    facts: dict[str, object] = {}
    if a.category:
        facts["Category"] = a.category
    facts["Severity"] = f"{a.severity} · {SEVERITY_LABELS.get(a.severity, '')}"
    facts["Confidence"] = fmt_percent(a.confidence)
    if a.location:
        facts["Location"] = a.location
    facts["Assessed by"] = a.source
    out.append(f'<div class="meta-grid"><div class="panel"><h4>Verdict</h4><p>{verdict}</p>{_kv_table(facts)}</div>')
    rows = "".join(f"<tr><th>{_e(title)}</th><td>{_score_bar(getattr(a, key))}{fmt_score(getattr(a, key))}</td></tr>"
                   for key, title in ASSESSMENT_SCORES.items())
    out.append(f'<div class="panel"><h4>Scores</h4><table class="kv">{rows}</table></div></div>')
    out.append(f"<h3>Reasoning summary</h3><p>{_e(a.reasoning_summary)}</p>")
    if a.evidence_description:
        out.append(f"<h3>Evidence</h3><p>{_e(a.evidence_description)}</p>")
    return "".join(out)


def _charts_html(report: Report) -> str:
    charts = []
    timeline = score_timeline_chart(report)
    if timeline:
        charts.append(f'<figure class="chart"><img class="chart-timeline" src="{timeline}" '
                      'alt="Score timeline per category"></figure>')
    breakdown = category_breakdown_chart(report)
    if breakdown:
        what = "Incidents per category" if report.category_breakdown else "Peak score per category"
        charts.append(f'<figure class="chart"><img class="chart-breakdown" src="{breakdown}" alt="{what}"></figure>')
    if not charts:
        return "<h2>Charts</h2><p><em>No scores to chart.</em></p>"
    return "<h2>Charts</h2>" + "".join(charts)


def render_html(report: Report) -> str:
    top = highest_incident(report)
    if top is not None:
        overall = (_badge(top.severity, top.severity_label, top.severity_color, large=True)
                   + f'<div class="caption">Highest severity · {len(report.incidents)} '
                   f"incident{'s' if len(report.incidents) != 1 else ''}</div>")
    else:
        overall = '<span class="badge badge-large" style="background:#e5e7eb;color:#374151">No incidents</span>'
    body = [
        '<header class="report-header"><div>',
        f'<div class="brand">Watchkeeper · {_e(report.kind)} report</div>',
        f"<h1>{_e(report.title)}</h1>",
        f'<div class="byline">Generated {_e(report.generated_at.isoformat(timespec="seconds"))}'
        f" · written by {_e(report.written_by)}</div>",
        f'</div><div class="overall">{overall}</div></header>',
    ]
    panels = []
    if report.subject:
        panels.append(f'<div class="panel"><h4>Subject</h4>{_kv_table(dict(report.subject))}</div>')
    if report.context:
        panels.append(f'<div class="panel"><h4>Context</h4>{_kv_table(dict(report.context))}</div>')
    if panels:
        body.append('<div class="meta-grid">' + "".join(panels) + "</div>")
    if not report.incidents:
        body.append(f'<p class="quiet">{_e(QUIET_TEXT)}</p>')
    body += [_incident_html(n, inc) for n, inc in enumerate(report.incidents, 1)]
    body.append(_assessment_html(report.assessment))
    body.append(_charts_html(report))
    body.append("<h2>Category scores</h2>")
    if report.scores:
        ordered = sorted(report.scores.items(), key=lambda kv: -kv[1])
        body.append(_data_table([("Category", ""), ("Id", ""), ("Peak score", "num")],
                                ([(category_name(report, k), ""), (k, "mono"), (fmt_score(v), "num")]
                                 for k, v in ordered)))
    else:
        body.append("<p><em>No category scored.</em></p>")
    if report.category_breakdown:
        body.append("<h2>Incidents per category</h2>")
        body.append(_data_table([("Category", ""), ("Incidents", "num")],
                                ([(k, ""), (str(v), "num")] for k, v in report.category_breakdown.items())))
    if report.statistics:
        body.append("<h2>Statistics</h2>"
                    + _kv_table({k: "–" if v is None else v for k, v in report.statistics.items()}))
    body.append(_entries_html("Timeline", report.timeline, "No timeline."))
    body.append(_entries_html("Transcript", report.transcript, "No speech was transcribed."))
    body.append(_entries_html("Audio events", report.audio_events, "No audio events."))
    if report.notes:
        body.append('<h2>Notes</h2><ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in report.notes) + "</ul>")
    body.append(f'<div class="footer">Watchkeeper {_e(report.kind)} report · '
                f"{_e(report.generated_at.isoformat(timespec='seconds'))}</div>")
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(report.title)}</title><style>{_css()}</style></head>"
            f'<body><main class="page">{"".join(body)}</main></body></html>\n')


# ----------------------------------------------------------------------------------------------- PDF


def render_pdf(report: Report) -> bytes:
    """The HTML page laid out as an A4 PDF by WeasyPrint; nothing but ``data:`` URLs is fetched."""
    try:
        import weasyprint
    except (ImportError, OSError) as exc:  # OSError: Pango or HarfBuzz missing from the system
        raise ConfigError(
            "PDF reports need WeasyPrint and its system libraries "
            "(Debian: libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core): " + str(exc)
        ) from exc
    fetcher = weasyprint.URLFetcher(allowed_protocols={"data"})
    document = weasyprint.HTML(string=render_html(report), url_fetcher=fetcher, media_type="print")
    return document.write_pdf()
