"""The model providers this server can ask, with their models: what ``provider`` in a request may name."""

from __future__ import annotations

from fastapi import APIRouter

from .. import schemas
from ..deps import ServicesDep, Viewer

router = APIRouter(prefix="/providers", tags=["providers"])


@router.get("", response_model=schemas.ProviderList, summary="The local pipeline and every configured provider")
def list_providers(services: ServicesDep, _: Viewer) -> schemas.ProviderList:
    reasoner = services.pipeline().reasoner
    settings = reasoner.settings  # with seed 000's local_llm_size applied
    items = [schemas.ProviderOut(name="local", type="local", vision=True)]
    items += [schemas.ProviderOut(name=name, type=provider.type, vision=provider.vision,
                                  fast_model=provider.model_for("fast"), detailed_model=provider.model_for("detailed"))
              for name, provider in reasoner.providers.items()]
    return schemas.ProviderList(providers=items, default_provider=settings.default_provider,
                                order=reasoner.order(None) or ["local"], verifier=settings.reasoning.verifier,
                                local_llm_size=settings.reasoning.local_llm_size)
