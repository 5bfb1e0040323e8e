"""The weapon detector shipped in the package (trained with ``watchkeeper train --format yolo``).

Its JSON card checks the sha256 of its own ``.npz`` weights, so the registry
holds no hash for them: a retrained detector ships as the two files alone.
"""

from __future__ import annotations

from pathlib import Path

from .registry import ModelBackend, package_dir, register_backend


@register_backend
class WeaponWindowsBackend(ModelBackend):
    name = "weapon-windows"
    description = ("Weapon detector (handgun, long gun, knife) on windows of YOLOv3-tiny features around people; "
                   "trained here, model card in 'watchkeeper models'")
    package = "watchkeeper"
    install_hint = "reinstall watchkeeper (the detector ships in watchkeeper/data/weapons)"
    files = {"model": "weapon-windows.json", "weights": "weapon-windows.npz"}
    sha256: dict[str, str] = {}

    def default_dir(self) -> Path:
        return package_dir("watchkeeper") / "data" / "weapons"

    def load(self, paths: dict[str, Path]):
        from ..weapons.model import WeaponModel

        return WeaponModel.load(paths["model"])
