"""Every page of the dashboard, as one router for the app."""

from __future__ import annotations

from fastapi import APIRouter

from . import account, analyze, cameras, incidents, pages, stats

router = APIRouter(include_in_schema=False)
for _module in (pages, incidents, analyze, stats, account, cameras):
    router.include_router(_module.router)
