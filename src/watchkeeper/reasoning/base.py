"""The provider interface: one chat call that may carry pictures and sound and must answer JSON.

A provider type is registered by name (``@provider_type("gemini")``); ``build_providers`` makes one
client per entry of ``settings.providers``. Each client applies its own rate limit, concurrency cap,
timeout and retries; falling back to the next provider is the caller's business.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from ..config import ProviderSettings, Settings
from ..domain import ProviderUsage
from ..errors import ConfigError, ProviderError

Tier = Literal["fast", "detailed"]


@dataclass
class ChatRequest:
    system: str
    user: str
    images_jpeg: list[bytes] = field(default_factory=list)  # sent only to vision-capable models
    audio_wav: bytes | None = None  # sent only to models that take sound
    tier: Tier = "fast"
    json_schema: dict[str, Any] | None = None  # the answer must be a JSON object valid against it
    max_output_tokens: int = 1024


@dataclass
class ChatReply:
    text: str
    model: str
    usage: ProviderUsage


class Provider(Protocol):
    name: str  # the entry's name in settings.providers
    type: str
    vision: bool
    audio: bool

    def model_for(self, tier: Tier) -> str: ...

    def complete(self, request: ChatRequest) -> ChatReply:
        """One answer; raises ``ProviderError`` (``retryable`` or not) once retries are spent."""
        ...


ProviderFactory = Callable[[str, ProviderSettings], Provider]
PROVIDER_TYPES: dict[str, ProviderFactory] = {}


def provider_type(*names: str) -> Callable[[ProviderFactory], ProviderFactory]:
    def register(factory: ProviderFactory) -> ProviderFactory:
        for name in names:
            PROVIDER_TYPES[name] = factory
        return factory

    return register


def build_providers(settings: Settings) -> dict[str, Provider]:
    """A client per configured provider, by name (the ``local`` pipeline is not one of them)."""
    if not settings.providers:
        return {}
    from . import litellm_provider  # noqa: F401  (registers the provider types; loads LiteLLM only when needed)

    providers = {}
    for name, entry in settings.providers.items():
        try:
            providers[name] = PROVIDER_TYPES[entry.type or name](name, entry)
        except ProviderError as exc:  # a missing model or endpoint is the settings' fault, said at start
            raise ConfigError(f"providers.{name}: {exc}") from exc
    return providers
