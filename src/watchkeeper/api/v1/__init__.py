"""The versioned JSON API under /api/v1, one router per resource."""

from __future__ import annotations

from fastapi import APIRouter

from ..problems import PROBLEM_RESPONSES
from . import analyses, audit, auth, cameras, incidents, jobs, keys, media, models, providers, stats, users

router = APIRouter(prefix="/api/v1", responses=PROBLEM_RESPONSES)
for _module in (auth, users, keys, media, analyses, incidents, jobs, stats, audit, cameras, providers, models):
    router.include_router(_module.router)
