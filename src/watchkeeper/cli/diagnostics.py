"""What ``watchkeeper models`` and ``watchkeeper doctor`` inspect."""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Settings, load_settings
from ..errors import WatchkeeperError
from ..models import ModelRegistry, load_all_backends

def model_rows(settings: Settings, *, load: bool) -> list[dict[str, Any]]:
    registry = ModelRegistry(settings.models)
    rows = []
    for name, backend in sorted(load_all_backends().items()):
        row = {"name": name, "description": backend.description, "source": "", "load_ms": "", "status": "ok",
               "optional": backend.optional}
        try:
            _, row["source"] = registry.resolve_files(name)
            if load:
                registry.get(name)
                row["load_ms"] = f"{registry.loaded()[name].load_ms:.0f}"
        except WatchkeeperError as exc:
            row["status"] = ("optional, not set up: " if backend.optional else "") + f"{type(exc).__name__}: {exc}"
        rows.append(row)
    return rows


def model_cards(settings: Settings) -> list[dict[str, Any]]:
    """The models trained for this product (the weapon detector, learned heads): what their cards say."""
    from ..analyzers.weapons import weapon_model
    from ..heads.head import load_heads

    cards = []
    try:
        weapon = weapon_model(settings, ModelRegistry(settings.models))
    except WatchkeeperError as exc:
        cards.append({"model": "weapon-windows", "category": "weapon", "error": str(exc)})
    else:
        card = weapon.meta.card
        cv = card.cross_validation
        cards.append({
            "model": weapon.name, "category": "weapon", "trained_at": card.trained_at,
            "data": (f"{card.data.images} pictures with weapons ({card.data.groups} source images; "
                     + ", ".join(f"{k} {n}" for k, n in card.data.boxes_per_kind.items())
                     + f"), {card.data.negative_frames} weapon-free frames from {card.data.negative_files} files"),
            "metrics": (f"{cv.folds}-fold grouped image ROC-AUC {cv.image_roc_auc}, "
                        f"recall at 5% false alarms {cv.recall_at_5pct_false_alarms}"),
            "threshold": f"{card.threshold.value:g} ({card.threshold.oof_false_alarm_rate:.1%} false alarms "
                         f"out of fold)",
            "summary": card.summary,
        })
    try:
        heads = load_heads(settings).all()
    except WatchkeeperError as exc:
        return cards + [{"model": "learned heads", "category": "", "error": str(exc)}]
    for head in heads:
        card = head.card
        cards.append({
            "model": head.name, "category": head.category, "trained_at": card.trained_at,
            "data": f"{card.data.positive_files} positive, {card.data.negative_files} negative files "
                    f"({card.data.dataset})",
            "metrics": f"{card.cross_validation.folds}-fold grouped file ROC-AUC {card.cross_validation.file_roc_auc}",
            "threshold": f"{card.threshold.value:g} ({card.threshold.oof_false_alarm_rate:.1%} false alarms "
                         f"out of fold)",
            "summary": card.summary,
        })
    return cards


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


SETUP_FIX = "run `make setup` (or: pip install -e . && pip install --no-deps -r requirements-nodeps.txt)"


def _package_check(dist: str, module: str, want: str | None = None) -> Check:
    try:
        importlib.import_module(module)
        version = importlib.metadata.version(dist)
    except Exception as exc:  # any import failure is what the doctor reports
        return Check(f"package {dist}", False, f"cannot import {module}: {exc}", SETUP_FIX)
    if want and not version.startswith(want):
        return Check(f"package {dist}", False, f"version {version}, expected {want}*", SETUP_FIX)
    return Check(f"package {dist}", True, version)


def doctor_checks(config: Path | None) -> list[Check]:
    checks = [Check("python", sys.version_info[:2] == (3, 11), sys.version.split()[0], "use Python 3.11")]
    try:
        settings = load_settings(config)
        checks.append(Check("settings", True, str(config or "defaults + environment")))
    except WatchkeeperError as exc:
        checks.append(Check("settings", False, str(exc), "correct the named keys"))
        settings = Settings()
    checks += [
        _package_check("numpy", "numpy", "1."),
        _package_check("opencv-contrib-python", "cv2", "4.11"),
        _package_check("av", "av"),
        _package_check("onnxruntime", "onnxruntime"),
        _package_check("mediapipe", "mediapipe", "0.10.21"),
        _package_check("faster-whisper", "faster_whisper"),
    ]
    for row in model_rows(settings, load=False):
        if row["optional"]:
            continue
        checks.append(Check(f"model {row['name']}", row["status"] == "ok", row["status"] if row["status"] != "ok"
                            else row["source"], SETUP_FIX))
    data_dir = Path(settings.data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=data_dir):
            pass
        checks.append(Check("data directory", True, str(data_dir.resolve())))
    except OSError as exc:
        checks.append(Check("data directory", False, f"{data_dir}: {exc}", "set WATCHKEEPER_DATA_DIR to a writable folder"))
    return checks
