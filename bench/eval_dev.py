"""How well the local pipeline's category scores separate the development data.

Runs the full pipeline on ``data/eval`` (see ../shared/datasets/README.md)
and prints ROC-AUC per category: assault on fight/noFight clips, fire on
fire/normal photos, shooting on UrbanSound8K gunshots vs the other classes,
alarm on sirens vs the other classes, and distress on spoken distress
phrases vs calm speech, both mixed into street noise. Writes
bench/results/eval_dev.json.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from watchkeeper import Pipeline
from watchkeeper.config import Settings
from watchkeeper.media import load_media
from watchkeeper.samples import SR, speak, write_audio

DISTRESS = [
    "Help me! Somebody help me!", "Call the police, he has a gun!", "Stop, let me go!", "Please don't shoot!",
    "Get off me! Help!", "Somebody call an ambulance, he is not breathing!", "Fire! Everybody get out!",
    "Give me your wallet or I will stab you.", "Help, help, he is hitting me!", "Drop the knife!",
]
CALM = [
    "The weather is nice today, let's get coffee.", "I will meet you at the station at five.",
    "Could you pass me the salt, please?", "The meeting has moved to the second floor.",
    "We need to buy milk and bread on the way home.", "My train was a little late this morning.",
    "The museum opens at ten on Sundays.", "Thanks for the lovely dinner last night.",
    "Turn left at the bakery and walk two blocks.", "The new library has a great reading room.",
]
VOICES = ["en-us", "en", "en-us+f3", "en+m3"]


def _mix(voice: np.ndarray, background: np.ndarray, snr_db: float) -> np.ndarray:
    background = np.resize(background, len(voice) + SR)
    voice = np.concatenate([np.zeros(SR // 2, np.float32), voice, np.zeros(SR // 2, np.float32)])
    p_voice = np.mean(voice[voice != 0] ** 2) if np.any(voice) else 1e-9
    p_bg = np.mean(background ** 2) + 1e-12
    gain = np.sqrt(p_voice / (p_bg * 10 ** (snr_db / 10)))
    return np.clip(voice + gain * background, -1, 1).astype(np.float32)


def speech_set(root: Path, work: Path, snr_db: float, rng: random.Random) -> tuple[list[Path], list[int]]:
    backgrounds = sorted((root / "urbansound").glob("street_music/*.wav"))[:10] + sorted(
        (root / "urbansound").glob("children_playing/*.wav"))[:10]
    paths, labels = [], []
    for label, sentences in ((1, DISTRESS), (0, CALM)):
        for i, sentence in enumerate(sentences):
            for voice in VOICES[:2]:
                raw = speak(sentence, work / "raw.wav", voice=voice)
                mixed = _mix(load_media(raw).audio, load_media(rng.choice(backgrounds)).audio, snr_db)
                paths.append(write_audio(work / f"speech_{label}_{i}_{voice.replace('+', '_')}.wav", mixed))
                labels.append(label)
    digits = sorted((root / "digits").glob("*/*.wav"))
    for path in rng.sample(digits, min(20, len(digits))):
        paths.append(path)
        labels.append(0)
    return paths, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("data/eval"))
    parser.add_argument("--per-class", type=int, default=60, help="Negatives per UrbanSound8K class.")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--snr-db", type=float, default=10.0)
    parser.add_argument("--only", nargs="*", help="Run only these tasks (assault fire shooting alarm distress).")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "eval_dev.json")
    args = parser.parse_args()
    rng = random.Random(0)
    work = Path(tempfile.mkdtemp(prefix="wk-eval-"))
    pipeline = Pipeline(Settings(data_dir=work / "data"))

    tasks: dict[str, tuple[str, list[Path], list[int]]] = {}
    fight = args.data / "fight"
    tasks["assault"] = ("assault", *zip(*[(p, 1) for p in sorted((fight / "fight").iterdir())]
                                          + [(p, 0) for p in sorted((fight / "noFight").iterdir())]))
    fire = args.data / "fire"
    tasks["fire"] = ("fire", *zip(*[(p, 1) for p in sorted((fire / "fire").iterdir())]
                                    + [(p, 0) for p in sorted((fire / "normal").iterdir())]))
    us = args.data / "urbansound"
    for category, positive in (("shooting", "gun_shot"), ("alarm", "siren")):
        pos = sorted((us / positive).glob("*.wav"))
        neg = [p for d in sorted(us.iterdir()) if d.name not in (positive, "gun_shot", "siren")
               for p in rng.sample(sorted(d.glob("*.wav")), min(args.per_class, len(list(d.glob("*.wav")))))]
        tasks[category] = (category, *zip(*[(p, 1) for p in pos] + [(p, 0) for p in neg]))
    if not args.only or "distress" in args.only:
        tasks["distress"] = ("distress", *speech_set(args.data, work, args.snr_db, rng))

    # A partial run (--only) updates the figures of its tasks and keeps the others.
    report = json.loads(args.out.read_text()) if args.only and args.out.is_file() else {}
    for name, (category, paths, labels) in tasks.items():
        if args.only and name not in args.only:
            continue
        scores, failed = {}, 0
        for item in pipeline.analyze_many(list(paths), workers=args.workers):
            if item.error:
                failed += 1
            else:
                scores[item.source] = item.result.scores.get(category, 0.0)
        y = [lab for p, lab in zip(paths, labels) if str(p) in scores]
        s = [scores[str(p)] for p in paths if str(p) in scores]
        auc = roc_auc_score(y, s) if len(set(y)) == 2 else float("nan")
        detected_pos = np.mean([v >= pipeline.fusion.rules.thresholds[category] for v, lab in zip(s, y) if lab]) if any(y) else 0
        false_pos = np.mean([v >= pipeline.fusion.rules.thresholds[category] for v, lab in zip(s, y) if not lab])
        report[name] = {"category": category, "roc_auc": round(float(auc), 4), "positives": int(sum(y)),
                        "negatives": len(y) - int(sum(y)), "failed": failed,
                        "recall_at_threshold": round(float(detected_pos), 3),
                        "false_positive_rate_at_threshold": round(float(false_pos), 3)}
        print(f"{name:10} ROC-AUC {auc:.3f}  recall {detected_pos:.2f}  FPR {false_pos:.2f}  "
              f"(+{sum(y)} / -{len(y) - sum(y)}, failed {failed})", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
