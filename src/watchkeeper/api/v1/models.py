"""The models the local pipeline uses, and whether each is installed: what `watchkeeper models` lists.

Every signed-in user may see the names and whether they are installed; where the weights lie, and the error
that says why one is missing, may name server folders, so only admins see those.
"""

from __future__ import annotations

from fastapi import APIRouter

from ...auth import role_allows
from ...cli.diagnostics import model_cards, model_rows
from .. import schemas
from ..deps import ServicesDep, Viewer

router = APIRouter(prefix="/models", tags=["models"])


@router.get("", response_model=schemas.ModelList, summary="The pipeline's models and whether they are installed")
def list_models(services: ServicesDep, principal: Viewer) -> schemas.ModelList:
    admin = role_allows(principal.role, "admin")
    # load=False: checking the files is enough, and loading every model would take seconds and memory.
    return schemas.ModelList(models=[
        schemas.ModelOut(name=row["name"], description=row["description"], optional=row["optional"],
                         installed=row["status"] == "ok", source=row["source"] if admin else None,
                         status=row["status"] if admin else None)
        for row in model_rows(services.settings, load=False)],
        cards=[schemas.ModelCardOut(**(card if admin or "error" not in card else {**card, "error": "unreadable"}))
               for card in model_cards(services.settings)])
