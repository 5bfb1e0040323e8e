"""Incident reports rendered as JSON, Markdown, HTML and PDF (reasoning.render)."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from watchkeeper.domain import Assessment, Verification
from watchkeeper.reasoning.render import QUIET_TEXT, render
from watchkeeper.reasoning.report_model import (
    SECTION_TITLES,
    EvidenceLine,
    IncidentPart,
    Picture,
    Report,
    Sections,
    TimelineEntry,
)

EXCERPT = 'Somebody shouts "get down, he has a gun" <script>alert("x")</script> & runs'
LINKS = {
    "snapshot": "https://watchkeeper.example/api/incidents/inc-42/snapshot.jpg",
    "clip": "http://10.0.0.5:8000/api/incidents/inc-42/clip.mp4",
    "audio": "/api/incidents/inc-42/audio.wav",
}


def _jpeg_base64() -> str:
    img = Image.new("RGB", (320, 180), (40, 48, 60))
    draw = ImageDraw.Draw(img)
    draw.rectangle((20, 40, 120, 160), fill=(200, 200, 210))
    draw.rectangle((180, 60, 300, 150), outline=(220, 40, 40), width=4)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=80)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def gunshot_report() -> Report:
    sections = Sections(
        situation_overview="A single gunshot was heard near the north gate at 12.4 s, followed by shouting.",
        severity_assessment="Level 5 EMERGENCY: gunfire in a public area, with people nearby.",
        hazard_analysis="Risk of further shots, injuries and a panicked crowd running towards the exits.",
        immediate_actions=["Call the police (112) and report shots fired", "Lock down the north gate",
                           "Direct people away from the north gate"],
        equipment_required=["Radios", "First-aid kits with tourniquets", "Public-address system"],
        de_escalation_strategy="Do not approach the shooter; keep staff behind cover and calm the crowd by PA.",
        resolution_method="Hand over to the police; account for staff and visitors; keep the footage.",
    )
    incident = IncidentPart(
        incident_id="inc-42",
        category="shooting",
        category_name="Gunfire",
        severity=5,
        severity_label="EMERGENCY",
        severity_color="#6f42c1",
        confidence=0.91,
        t_start_s=12.0,
        t_end_s=16.5,
        camera="north-gate",
        zone="entrance",
        location="audio track, 12.4 s",
        summary="Gunfire at the north gate: a gunshot sound confirmed by speech about a gun.",
        requires_immediate_action=True,
        sections=sections,
        evidence=[
            EvidenceLine(modality="audio", label="Gunshot", score=0.93, t_start_s=12.0, t_end_s=13.0,
                         analyzer="audio_events", contribution=0.62),
            EvidenceLine(modality="speech", label="text:gun", score=0.71, t_start_s=13.1, t_end_s=15.8,
                         analyzer="speech_text", contribution=0.29),
        ],
        transcript_excerpts=[EXCERPT],
        pictures=[Picture(caption="north-gate at 12.4 s", jpeg_base64=_jpeg_base64())],
        links=dict(LINKS),
        verification=Verification(
            verifier="local", verdict="confirmed", agrees=True,
            checks=["audio: Gunshot 0.93 above its 0.60 threshold", "speech agrees: 'gun' at 13.1 s"],
            rule="two modalities agree", decision="kept at severity 5",
            final_category="shooting", final_severity=5,
        ),
    )
    times = [i * 2.0 for i in range(16)]
    return Report(
        kind="incident",
        title="Gunfire at the north gate",
        generated_at=datetime(2025, 5, 14, 21, 3, 7, tzinfo=timezone.utc),
        written_by="templates",
        subject={"source": "north-gate.mp4", "analysis": "an-7f3c", "camera": "north-gate"},
        context={"event": "Summer festival", "expected attendance": "12 000"},
        incidents=[incident],
        assessment=Assessment(
            crime_detected=True, category="shooting", severity=5, confidence=0.91,
            evidence_description="Gunshot sound at 12.0 s and speech about a gun.",
            location="audio track, 12.4 s", visual_score=0.12, audio_score=0.93, text_alignment_score=0.71,
            multimodal_agreement=0.66, reasoning_summary="Audio and speech agree on gunfire; nothing visual.",
            threat_severity_index=0.91,
        ),
        scores={"shooting": 0.91, "distress": 0.44, "crowd": 0.03},
        category_names={"shooting": "Gunfire", "distress": "Distress call", "crowd": "Crowd control"},
        score_timeline={
            "shooting": [(t, 0.91 if 12 <= t <= 16 else 0.05) for t in times],
            "distress": [(t, 0.44 if 14 <= t <= 20 else 0.02) for t in times],
        },
        category_breakdown={"Gunfire": 1, "Distress call": 1},
        statistics={"duration_s": 31.0, "frames": 32, "provider": None},
        transcript=[TimelineEntry(t_s=13.1, what=EXCERPT)],
        audio_events=[TimelineEntry(t_s=12.0, what="Gunshot, gunfire 0.93"),
                      TimelineEntry(t_s=14.0, what="Screaming 0.41")],
        timeline=[TimelineEntry(t_s=12.0, what="Gunshot heard"), TimelineEntry(t_s=13.1, what="Speech about a gun")],
        notes=["No provider was configured: the sections come from the category templates."],
    )


def quiet_report() -> Report:
    return Report(kind="analysis", title="Analysis of car-park.jpg",
                  generated_at=datetime(2025, 5, 14, 9, 0, tzinfo=timezone.utc), written_by="templates")


@pytest.fixture(scope="module")
def report() -> Report:
    return gunshot_report()


@pytest.fixture(scope="module")
def html_text(report) -> str:
    return render(report, "html").decode("utf-8")


@pytest.fixture(scope="module")
def pdf_bytes(report) -> bytes:
    data = render(report, "pdf")
    Path("/tmp/report.pdf").write_bytes(data)
    return data


def test_json_round_trips(report):
    data = render(report, "json")
    assert data.startswith(b"{\n  ")  # indent 2
    assert Report.model_validate_json(data) == report
    assert json.loads(data)["incidents"][0]["evidence"][0]["label"] == "Gunshot"


def test_markdown_has_sections_in_order_and_evidence(report):
    md = render(report, "markdown").decode("utf-8")
    positions = [md.index(f"### {title}") for title in SECTION_TITLES.values()]
    assert positions == sorted(positions)
    assert md.startswith("# Gunfire at the north gate")
    assert "Severity 5 – EMERGENCY" in md
    assert re.search(r"\| audio \| Gunshot \(audio_events\) \| 0\.93 \| 0:12\.0–0:13\.0 \| 0\.62 \|", md)
    assert "| speech | text:gun (speech_text) | 0.71 |" in md
    assert "get down, he has a gun" in md
    # A "<" that could open a tag is escaped, so a Markdown viewer would not run it either.
    assert "\\<script>" in md and not re.search(r"(?<!\\)<script>", md)
    assert "#### Verification: confirmed" in md and "two modalities agree" in md
    for title in ("Visual score", "Audio score", "Text alignment score", "Multimodal agreement",
                  "Threat severity index"):
        assert title in md
    assert md.index("## Overall assessment") > positions[-1]
    for heading in ("## Category scores", "## Timeline", "## Transcript", "## Audio events", "## Notes"):
        assert heading in md


def test_html_is_escaped_self_contained_with_picture_and_charts(report, html_text):
    page = html_text
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    jpeg = report.incidents[0].pictures[0].jpeg_base64
    assert f'src="data:image/jpeg;base64,{jpeg}"' in page
    assert len(re.findall(r'<img class="chart-\w+" src="data:image/svg\+xml;base64,', page)) == 2
    assert "#6f42c1" in page  # the EMERGENCY badge's colour
    # Every resource is inline; the only web addresses are the incident's links, as hrefs.
    for src in re.findall(r'\bsrc="([^"]*)"', page):
        assert src.startswith("data:")
    for href in re.findall(r'\bhref="([^"]*)"', page):
        assert href in LINKS.values()
    assert "<link" not in page and "@import" not in page and "url(" not in page
    stripped = page
    for url in LINKS.values():
        stripped = stripped.replace(url, "")
    assert "http://" not in stripped and "https://" not in stripped


def test_pdf_has_extractable_text(pdf_bytes):
    from pypdf import PdfReader

    assert pdf_bytes.startswith(b"%PDF-")
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf_bytes)).pages)
    flat = " ".join(text.split())
    positions = [flat.index(title) for title in SECTION_TITLES.values()]
    assert positions == sorted(positions)
    assert "Gunfire" in flat and "Gunshot" in flat
    assert 'get down, he has a gun" <script>alert("x")</script> & runs' in flat


@pytest.mark.parametrize("fmt", ["json", "markdown", "html", "pdf"])
def test_quiet_report_renders(fmt):
    out = render(quiet_report(), fmt)
    assert out
    if fmt == "json":
        assert Report.model_validate_json(out).incidents == []
    elif fmt in ("markdown", "html"):
        text = out.decode("utf-8")
        assert QUIET_TEXT in text
        assert "No overall assessment was made." in text
    else:
        from pypdf import PdfReader

        text = " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(out)).pages).split())
        assert "No incidents were detected" in text


def test_missing_pieces_never_fail(report):
    bare = report.model_copy(deep=True)
    inc = bare.incidents[0]
    inc.pictures = [Picture(caption="broken", jpeg_base64="not base64!")]
    inc.evidence, inc.links, inc.verification, inc.transcript_excerpts = [], {}, None, []
    inc.severity_color = "red;background:url(http://evil)"  # not a colour: the taxonomy's is used
    bare.assessment, bare.score_timeline, bare.category_breakdown, bare.scores = None, {}, {}, {}
    page = render(bare, "html").decode("utf-8")
    assert "evil" not in page and "#6f42c1" in page
    assert "could not be decoded" in page and "No scores to chart." in page
    assert render(bare, "markdown")


def test_peak_scores_chart_without_breakdown_and_threads(report):
    other = report.model_copy(update={"category_breakdown": {}})
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(render(other, "html").decode())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    assert all('alt="Peak score per category"' in page for page in results)


def test_html_screenshot_in_headless_chromium(html_text, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium; scripts/system-deps.sh)")
    page = tmp_path / "report.html"
    page.write_text(html_text, encoding="utf-8")
    out = tmp_path / "report.png"
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--screenshot={out}",
         "--window-size=1280,2400", page.as_uri()],
        check=True, capture_output=True, timeout=60,
    )
    shutil.copyfile(out, "/tmp/report_html.png")
    with Image.open(out) as img:
        assert img.size == (1280, 2400)
        colours = img.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 50  # text, badge, pictures: not a blank page
