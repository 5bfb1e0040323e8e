"""Folder-per-label data sets for ``watchkeeper train`` and ``watchkeeper eval``.

``DATASET_DIR/<label>/...`` holds the media of each label (subfolders
included); the labels named positive are the positives and every other
label is a negative. Each file has a cross-validation group: from a group
file (CSV or TSV rows ``path,group``, paths relative to the data set), from
a regular expression on the file name, or else its own content hash, so
the windows of one clip never straddle folds. Byte-identical files are
refused, or with ``duplicates="drop"`` all but one are dropped (every copy
when the copies carry different classes).
"""

from __future__ import annotations

import csv
import logging
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..batch import MEDIA_EXTENSIONS
from ..cache import sha256_file
from ..config import MediaSettings
from ..domain import MediaType
from ..errors import ConfigError, MediaError
from ..media import detect_media_type

log = logging.getLogger(__name__)

DuplicatePolicy = Literal["refuse", "drop", "allow"]
# Duplicate sets named in an error message; the rest are counted.
MAX_LISTED = 20


@dataclass(frozen=True)
class Sample:
    """One media file of a data set. ``media_type`` is None when the file is no readable media (``error`` says why)."""

    path: Path
    label: str
    positive: bool
    sha256: str
    group: str
    media_type: MediaType | None
    error: dict[str, str] | None = None


@dataclass
class Dataset:
    root: Path
    positive_labels: list[str]
    negative_labels: list[str]
    samples: list[Sample]
    group_source: str
    # (dropped file, the copy kept or None when every copy was dropped)
    dropped_duplicates: list[tuple[Path, Path | None]] = field(default_factory=list)

    @property
    def files_per_label(self) -> dict[str, int]:
        counts = dict.fromkeys(self.positive_labels + self.negative_labels, 0)
        for sample in self.samples:
            counts[sample.label] += 1
        return counts

    def relative(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)


def parse_labels(text: str) -> list[str]:
    labels = [part.strip() for part in text.split(",") if part.strip()]
    if not labels:
        raise ConfigError("--positive names no label")
    return labels


def load_dataset(
    root: str | Path,
    positive: Sequence[str],
    *,
    group_file: str | Path | None = None,
    group_pattern: str | None = None,
    duplicates: DuplicatePolicy = "refuse",
    media_settings: MediaSettings | None = None,
) -> Dataset:
    """List, hash and group a folder-per-label data set; ``ConfigError`` for anything unusable."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"data set {root} is not a folder")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    labels = [p.name for p in folders]
    missing = [label for label in positive if label not in labels]
    if missing:
        raise ConfigError(f"data set {root} has no folder for positive label(s) {missing}; its labels: {labels}")
    negatives = [label for label in labels if label not in positive]
    if not negatives:
        raise ConfigError(f"data set {root}: every label is positive; negatives come from the other label folders")
    loose = [p.name for p in root.iterdir() if p.is_file() and p.suffix.lower() in MEDIA_EXTENSIONS]
    if loose:
        log.warning("%d media files directly in %s belong to no label and are ignored", len(loose), root)
    if group_file is not None and group_pattern is not None:
        raise ConfigError("give a group file or a group pattern, not both")

    files = [
        (folder.name, path)
        for folder in folders
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.suffix.lower() in MEDIA_EXTENSIONS
    ]
    hashes = {path: sha256_file(path) for _, path in files}
    kept, dropped = _apply_duplicate_policy(root, files, hashes, set(positive), duplicates)

    kept_paths = [p for _, p in kept]
    if group_file is not None:
        groups, source = _groups_from_file(root, Path(group_file), kept_paths), f"group file {group_file}"
    elif group_pattern is not None:
        groups, source = _groups_from_pattern(group_pattern, kept_paths), f"file-name pattern {group_pattern!r}"
    else:
        groups, source = {}, "one group per file (content hash)"

    settings = media_settings or MediaSettings()
    samples = []
    for label, path in kept:
        media_type, error = None, None
        try:
            media_type = detect_media_type(path, settings).media_type
        except MediaError as exc:
            error = exc.to_dict()
        samples.append(Sample(path, label, label in positive, hashes[path], groups.get(path, hashes[path]),
                              media_type, error))
    dataset = Dataset(root, list(positive), negatives, samples, source, dropped)
    if not any(s.positive for s in samples):
        raise ConfigError(f"data set {root}: the positive folder(s) {list(positive)} hold no media files")
    if all(s.positive for s in samples):
        raise ConfigError(f"data set {root}: the negative folders {negatives} hold no media files")
    return dataset


def _apply_duplicate_policy(
    root: Path, files: list[tuple[str, Path]], hashes: dict[Path, str], positive: set[str], policy: DuplicatePolicy
) -> tuple[list[tuple[str, Path]], list[tuple[Path, Path | None]]]:
    copies: dict[str, list[tuple[str, Path]]] = defaultdict(list)
    for label, path in files:
        copies[hashes[path]].append((label, path))
    duplicated = [entries for entries in copies.values() if len(entries) > 1]
    if not duplicated or policy == "allow":
        return files, []
    if policy == "refuse":
        lines = [" = ".join(str(p.relative_to(root)) for _, p in entries) for entries in duplicated[:MAX_LISTED]]
        more = f"\n  ... and {len(duplicated) - MAX_LISTED} more" if len(duplicated) > MAX_LISTED else ""
        raise ConfigError(
            f"data set {root} holds {len(duplicated)} set(s) of byte-identical files (they would leak between "
            f"cross-validation folds); remove them or pass --dedupe to keep one copy of each:\n  "
            + "\n  ".join(lines) + more
        )
    drop: dict[Path, Path | None] = {}
    for entries in duplicated:
        classes = {label in positive for label, _ in entries}
        keep = None if len(classes) > 1 else entries[0][1]
        for _, path in entries:
            if path != keep:
                drop[path] = keep
    log.warning("dropped %d duplicate files from %s", len(drop), root)
    return [(label, p) for label, p in files if p not in drop], sorted(drop.items())


def _groups_from_file(root: Path, group_file: Path, paths: list[Path]) -> dict[Path, str]:
    try:
        text = group_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read group file {group_file}: {exc.strerror or exc}") from exc
    first = text.splitlines()[0] if text.strip() else ""
    rows = list(csv.reader(text.splitlines(), delimiter="\t" if "\t" in first else ","))
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["path", "group"]:
        rows = rows[1:]
    known = {p.resolve(): p for p in paths}
    groups: dict[Path, str] = {}
    unknown = 0
    for number, row in enumerate(rows, start=1):
        if not row or not "".join(row).strip():
            continue
        if len(row) < 2 or not row[1].strip():
            raise ConfigError(f"group file {group_file}, row {number}: expected 'path,group', got {row!r}")
        path = Path(row[0].strip())
        resolved = (path if path.is_absolute() else root / path).resolve()
        if resolved in known:
            groups[known[resolved]] = f"group:{row[1].strip()}"
        else:
            unknown += 1
    if unknown:
        log.warning("group file %s names %d files that are not in the data set", group_file, unknown)
    ungrouped = len(paths) - len(groups)
    if ungrouped:
        log.warning("%d files are not in group file %s; each is its own group", ungrouped, group_file)
    return groups


def _groups_from_pattern(pattern: str, paths: list[Path]) -> dict[Path, str]:
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"group pattern {pattern!r} is not a valid regular expression: {exc}") from exc
    groups = {}
    for path in paths:
        match = regex.search(path.name)
        if match:
            groups[path] = f"group:{match.group(1) if regex.groups else match.group(0)}"
    if len(groups) < len(paths):
        log.warning("%d file names do not match group pattern %r; each is its own group", len(paths) - len(groups),
                    pattern)
    return groups
