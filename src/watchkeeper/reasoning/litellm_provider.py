"""Every hosted or on-premise model provider through one client built on LiteLLM.

LiteLLM speaks each provider's own API (OpenAI chat completions, Anthropic messages, Gemini generateContent,
Ollama's chat, ...) and maps their errors onto one set of exceptions. What it does not do the way the product
needs is done here, per provider entry: a rate limit, a cap on requests in flight, retries that are counted,
usage and cost accounting, and errors that say whether trying again may help.
"""

from __future__ import annotations

import base64
import email.utils
import math
import os
import random
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import httpx

# Before LiteLLM is imported: its model cost map, Anthropic beta-header list and tokenizers come from the
# copies in the package instead of being fetched from the internet (a site may have no internet at all).
# LiteLLM 1.110 has no usage telemetry outside its proxy server, so there is nothing else to turn off.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ["LITELLM_OFFLINE_MODE"] = "true"

# LiteLLM's typed dicts trip a pydantic notice, at import and at its first calls, that means nothing to users.
warnings.filterwarnings("ignore", message=r".*`ReadOnly` qualifier", category=UserWarning)

import litellm  # noqa: E402

from ..config import ProviderSettings  # noqa: E402
from ..domain import ProviderUsage  # noqa: E402
from ..errors import ProviderError  # noqa: E402
from .base import ChatReply, ChatRequest, Tier, provider_type  # noqa: E402

litellm.suppress_debug_info = True  # no "Give Feedback" banners printed on every failed call
litellm.disable_hf_tokenizer_download = True

# type -> (LiteLLM's prefix, default fast model, default detailed model). Gemini's, OpenAI's, Anthropic's and
# Groq's defaults are in LiteLLM 1.110's model list and not past deprecation; Replicate's, Hugging Face's and
# Ollama's are the Llama 8B/70B tiers; an OpenAI-compatible server's model must be named by the operator.
MODELS: dict[str, tuple[str, str | None, str | None]] = {
    "gemini": ("gemini", "gemini-3.5-flash-lite", "gemini-3.5-flash"),
    "openai": ("openai", "gpt-4o-mini", "gpt-4o"),
    "anthropic": ("anthropic", "claude-haiku-5-5", "claude-sonnet-5-5"),
    "groq": ("groq", "openai/gpt-oss-20b", "openai/gpt-oss-120b"),
    "replicate": ("replicate", "meta/meta-llama-3-8b-instruct", "meta/meta-llama-3-70b-instruct"),
    "huggingface": ("huggingface", "meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.3-70B-Instruct"),
    "ollama": ("ollama_chat", "llama3.1:8b", "llama3.3:70b"),  # /api/chat: takes images and a JSON format
    "openai_compatible": ("openai", None, None),  # the OpenAI client pointed at base_url (llama.cpp, vLLM)
}

RETRY_AFTER_HEADERS = ("retry-after-ms", "retry-after")


class RequestPacer:
    """A token bucket that holds one token: calls start at least ``60 / per_minute`` seconds apart.

    Each caller reserves the next free start under the lock and sleeps outside it, so threads queue fairly
    and none holds the lock while waiting."""

    def __init__(self, per_minute: float) -> None:
        self.interval_s = 60.0 / per_minute
        self._next_start = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next_start)
            self._next_start = start + self.interval_s
        if start > now:
            time.sleep(start - now)


@provider_type("gemini", "openai", "anthropic", "groq", "replicate", "huggingface", "ollama", "openai_compatible")
class LiteLLMProvider:
    """One configured provider entry; safe to share between threads."""

    def __init__(self, name: str, settings: ProviderSettings, *, backoff_s: float = 0.5,
                 max_wait_s: float = 30.0) -> None:
        self.name = name
        self.type = settings.type or name
        self.settings = settings
        self.backoff_s = backoff_s  # the first retry's wait; it doubles per retry, with jitter
        self.max_wait_s = max_wait_s  # the longest wait between attempts, a Retry-After included
        self._prefix, fast, detailed = MODELS[self.type]
        fast = settings.fast_model or settings.model or fast
        detailed = settings.detailed_model or settings.model or detailed
        if fast is None or detailed is None:
            raise ProviderError(f"provider '{name}' ({self.type}) needs a model", provider=name)
        if self.type == "openai_compatible" and not settings.base_url:
            raise ProviderError(f"provider '{name}' (openai_compatible) needs a base_url", provider=name)
        self._models: dict[Tier, str] = {"fast": _qualified(self._prefix, fast, self.type),
                                         "detailed": _qualified(self._prefix, detailed, self.type)}
        self.vision = (settings.vision if settings.vision is not None
                       else all(_known(litellm.supports_vision, m) for m in self._models.values()))
        self.audio = (settings.audio if settings.audio is not None
                      else all(_known(litellm.supports_audio_input, m) for m in self._models.values()))
        self._schema_ok = {tier: _known(litellm.supports_response_schema, m) for tier, m in self._models.items()}
        self._pacer = RequestPacer(settings.requests_per_minute) if settings.requests_per_minute else None
        self._slots = threading.BoundedSemaphore(settings.max_concurrency)

    def model_for(self, tier: Tier) -> str:
        return self._models[tier]

    def complete(self, request: ChatRequest) -> ChatReply:
        model = self.model_for(request.tier)
        call = self._call_arguments(request, model)
        started = time.monotonic()
        attempts = 0
        while True:
            attempts += 1
            if self._pacer is not None:
                self._pacer.wait()
            try:
                with self._slots:
                    response = litellm.completion(**call)
                break
            except Exception as exc:  # LiteLLM maps provider errors to its own; anything else is final
                retryable, retry_after_s = _retryability(exc)
                if not retryable or attempts > self.settings.max_retries:
                    raise ProviderError(self._failure(model, exc, attempts), provider=self.name,
                                        retryable=retryable) from exc
                time.sleep(self._wait_s(attempts, retry_after_s))
        try:  # an answer of an unexpected shape is the provider's failure, never the analysis's
            text = response.choices[0].message.content or ""
            tokens = getattr(response, "usage", None)
            input_tokens = int(getattr(tokens, "prompt_tokens", 0) or 0)
            output_tokens = int(getattr(tokens, "completion_tokens", 0) or 0)
        except (AttributeError, IndexError, TypeError, ValueError) as exc:
            raise ProviderError(f"{self.name} ({model}) answered in an unexpected shape: {type(exc).__name__}",
                                provider=self.name) from exc
        usage = ProviderUsage(input_tokens=input_tokens, output_tokens=output_tokens,
                              cost_usd=self._cost(response, model, input_tokens, output_tokens),
                              latency_ms=(time.monotonic() - started) * 1000.0, attempts=attempts)
        return ChatReply(text=text, model=model, usage=usage)

    def _call_arguments(self, request: ChatRequest, model: str) -> dict[str, Any]:
        parts: list[dict[str, Any]] = []
        if self.vision:
            parts += [{"type": "image_url",
                       "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")}}
                      for jpeg in request.images_jpeg]
        if self.audio and request.audio_wav:
            parts.append({"type": "input_audio",
                          "input_audio": {"data": base64.b64encode(request.audio_wav).decode("ascii"), "format": "wav"}})
        content: str | list[dict[str, Any]] = [{"type": "text", "text": request.user}, *parts] if parts else request.user
        messages = [{"role": "system", "content": request.system}] if request.system else []
        messages.append({"role": "user", "content": content})
        if request.json_schema is not None and self._schema_ok[request.tier]:
            response_format: dict[str, Any] = {"type": "json_schema",
                                               "json_schema": {"name": "answer", "schema": request.json_schema}}
        else:  # JSON mode where the provider has one; the prompt asks for JSON anyway
            response_format = {"type": "json_object"}
        api_key = self.settings.api_key
        if api_key is None and self.type == "openai_compatible":
            # The OpenAI client refuses to start without a key and would otherwise send OPENAI_API_KEY
            # from the environment to this third-party server.
            api_key = "no-key"
        return {
            "model": model,
            "messages": messages,
            "max_tokens": request.max_output_tokens,
            "response_format": response_format,
            "drop_params": True,  # a provider without JSON mode gets the request without it, not an error
            "timeout": self.settings.timeout_s,
            "num_retries": 0,  # retries are ours, so they are counted, paced and capped per provider
            "max_retries": 0,
            "api_key": api_key,
            "api_base": self.settings.base_url,
        }

    def _wait_s(self, attempts: int, retry_after_s: float | None) -> float:
        if retry_after_s is not None:
            return min(retry_after_s, self.max_wait_s)
        return min(self.backoff_s * 2 ** (attempts - 1) * (1.0 + random.random()), self.max_wait_s)

    def _cost(self, response: Any, model: str, input_tokens: int, output_tokens: int) -> float | None:
        """The configured prices when both are set; else LiteLLM's price list, which cannot know what a
        self-hosted OpenAI-compatible server costs; None when unknown."""
        s = self.settings
        if s.input_usd_per_mtok is not None and s.output_usd_per_mtok is not None:
            return (input_tokens * s.input_usd_per_mtok + output_tokens * s.output_usd_per_mtok) / 1e6
        if self.type == "openai_compatible":
            return None
        try:  # named with its provider: the answer's own model name may look like another provider's
            return float(litellm.completion_cost(completion_response=response, model=model[len(self._prefix) + 1:],
                                                 custom_llm_provider=self._prefix))
        except Exception:  # a model missing from the price list
            return None

    def _failure(self, model: str, exc: Exception, attempts: int) -> str:
        status = getattr(exc, "status_code", None)
        detail = " ".join(str(exc).split())
        # Before cutting, or a key straddling the cut keeps its start; keys from the environment count too.
        keys = {self.settings.api_key, *(os.environ.get(n) for n in os.environ if n.endswith(("_API_KEY", "_TOKEN")))}
        for key in sorted((k for k in keys if k and len(k) >= 8), key=len, reverse=True):
            detail = detail.replace(key, "***")
        detail = detail[:300]
        return (f"{self.name} ({model}) failed after {attempts} attempt{'s' if attempts > 1 else ''}: "
                f"{type(exc).__name__}{f' {status}' if status else ''}: {detail}")


def _qualified(prefix: str, model: str, type_: str) -> str:
    """LiteLLM's name for a model. A name already carrying the prefix is kept, except for an OpenAI-compatible
    server, whose own model names may start with ``openai/``."""
    return model if type_ != "openai_compatible" and model.startswith(prefix + "/") else f"{prefix}/{model}"


def _known(capability: Callable[..., bool | None], model: str) -> bool:
    """A capability from LiteLLM's model list; a model it does not know is taken not to have it."""
    try:
        return bool(capability(model=model))
    except Exception:
        return False


def _retryability(exc: Exception) -> tuple[bool, float | None]:
    """Whether another attempt may work (429, 5xx, timeout, no connection), and the server's Retry-After."""
    status = getattr(exc, "status_code", None)
    retryable = (isinstance(exc, (litellm.Timeout, litellm.APIConnectionError))
                 or status in (408, 429) or (isinstance(status, int) and status >= 500))
    return retryable, (_retry_after_s(exc) if retryable else None)


def _retry_after_s(exc: Exception) -> float | None:
    raw = getattr(exc, "litellm_response_headers", None) or getattr(getattr(exc, "response", None), "headers", None)
    if not raw:
        return None
    headers = httpx.Headers(raw)
    for name in RETRY_AFTER_HEADERS:
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / (1000.0 if name == "retry-after-ms" else 1.0)
        except ValueError:  # Retry-After may be an HTTP date
            date = email.utils.parsedate_tz(value)
            if date is None:
                continue
            seconds = email.utils.mktime_tz(date) - time.time()
        if math.isfinite(seconds):
            return max(seconds, 0.0)
    return None
