"""The reasoning stage: the local judgement always, a provider's when one is asked for, and a second opinion.

``Reasoner.refine`` fills ``assessment``, ``local_analysis``, ``provider_results`` and
``cross_verification`` of an analysis. With no provider (or ``local``) the
assessment and the verification are computed from the fused evidence. With
one, the providers are tried in order until one answers JSON that the schema
accepts (a malformed answer is repaired, then asked again once); a provider
that fails is recorded with its error and never fails the analysis. The
verifier (another provider, or the local evidence) re-judges the finding, and
the decision rules say what a disagreement does. Provider answers are cached
with the analysis, keyed by the media, the analysis settings, the model and the
prompt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from pydantic import ValidationError

from ..cache import ResultCache
from ..config import DecisionRules, Settings
from ..domain import AnalysisResult, Assessment, ProviderResult, ProviderUsage, Verification
from ..errors import ProviderError
from ..taxonomy import Category, confidence_word, threat_severity_index
from .base import ChatRequest, Provider, build_providers
from .local import local_assessment, local_verification
from .prompt import answer_schema, evidence_text, excerpt, jpeg, system_prompt, wav

log = logging.getLogger(__name__)

LOCAL = "local"
PictureSource = Callable[[], list[np.ndarray]]
SoundSource = Callable[[], np.ndarray | None]  # the media's sound, 16 kHz mono, or None


@dataclass
class Answer:
    assessment: Assessment | None
    result: ProviderResult


class Reasoner:
    def __init__(self, settings: Settings, categories: dict[str, Category], *,
                 providers: dict[str, Provider] | None = None, cache: ResultCache | None = None) -> None:
        self.settings = settings = on_premise_models(settings)
        self.categories = categories
        self.providers = providers if providers is not None else build_providers(settings)
        self.cache = cache

    def names(self) -> list[str]:
        return [LOCAL, *self.providers]

    def order(self, provider: str | None) -> list[str]:
        """The providers to try, the asked-for one first; empty for the local pipeline alone."""
        first = provider or self.settings.default_provider
        if first == LOCAL:
            return []
        if first not in self.providers:
            raise ProviderError(f"unknown provider '{first}'; configured: {', '.join(self.names())}", provider=first)
        rest = self.settings.reasoning.order or list(self.providers)
        return [first, *(name for name in rest if name not in (first, LOCAL))]

    def refine(self, result: AnalysisResult, *, provider: str | None = None,
               pictures: PictureSource | None = None, sound: SoundSource | None = None) -> AnalysisResult:
        local = local_assessment(result)
        result.local_analysis = local
        result.assessment = local
        result.provider_results = []
        order = self.order(provider)
        if not order:
            result.cross_verification = (local_verification(result) if self.settings.reasoning.verifier == LOCAL
                                         else None)
            return result
        request = self._request(result, local, pictures if any(self.providers[n].vision for n in order) else None,
                                sound if any(self.providers[n].audio for n in order) else None)
        answered: str | None = None
        for name in order:
            answer = self._ask(name, request, result)
            result.provider_results.append(answer.result)
            if answer.assessment is not None:
                result.assessment, answered = answer.assessment, name
                break
        if answered is None:
            log.warning("no provider answered; the local assessment stands", extra={"providers": order})
            result.cross_verification = local_verification(result) if self.settings.reasoning.verifier == LOCAL else None
            return result
        verification = self._verify(result, answered, request)
        if verification is not None:
            result.assessment, verification = decide(result.assessment, verification, self.settings.reasoning.rules)
        result.cross_verification = verification
        self._apply(result, answered)
        return result

    def _apply(self, result: AnalysisResult, provider: str) -> None:
        """Seed 000's flat fields follow the final judgement when a provider made it."""
        final = result.assessment
        result.provider = provider
        result.crime_detected = final.crime_detected
        category = self.categories.get(final.category or "")
        result.crime_type = category.name if final.crime_detected and category else None
        result.confidence = confidence_word(final.confidence)
        result.evidence_description = final.evidence_description or result.evidence_description

    # -- asking ----------------------------------------------------------------------------------
    def _request(self, result: AnalysisResult, local: Assessment, pictures: PictureSource | None,
                 sound: SoundSource | None) -> ChatRequest:
        severe = local.crime_detected and local.severity >= self.settings.reasoning.detailed_from_severity
        images = [jpeg(rgb) for rgb in (pictures() if pictures else [])][: self.settings.reasoning.max_frames]
        samples = sound() if sound else None
        return ChatRequest(
            system=system_prompt(self.settings, self.categories),
            user=evidence_text(result, local, names={c.id: c.name for c in self.categories.values()}),
            images_jpeg=images, audio_wav=wav(excerpt(samples, result)) if samples is not None else None,
            tier="detailed" if severe else "fast", json_schema=answer_schema(self.categories),
        )

    def _ask(self, name: str, request: ChatRequest, result: AnalysisResult, role: str = "assessment") -> Answer:
        provider = self.providers[name]
        model = provider.model_for(request.tier)
        # What this provider cannot take is not sent, nor part of its cache key.
        request = replace(request, images_jpeg=request.images_jpeg if provider.vision else [],
                          audio_wav=request.audio_wav if provider.audio else None)
        key = _cache_key(result, name, model, request, role)
        cached = self._cached(result, key)
        if cached is not None:
            return Answer(cached.assessment, cached)
        answer = self._ask_uncached(provider, model, request, role)
        if answer.result.ok and self.cache is not None and result.media.sha256:  # live windows have no hash
            self.cache.put(result.media.sha256, key, answer.result.model_dump_json())
        return answer

    def _ask_uncached(self, provider: Provider, model: str, request: ChatRequest, role: str) -> Answer:
        usage = None
        try:
            reply = provider.complete(request)
            usage = reply.usage
            assessment, problem = parse_assessment(reply.text, self.categories, f"{provider.name}:{reply.model}")
            if assessment is None:  # ask again once, saying what was wrong
                again = replace(request, user=f"{request.user}\n\nYour previous answer was rejected: {problem}. "
                                              "Answer again with the JSON object only.")
                reply = provider.complete(again)
                usage = _add(usage, reply.usage)
                assessment, problem = parse_assessment(reply.text, self.categories, f"{provider.name}:{reply.model}")
            if assessment is None:
                raise ProviderError(f"the answer did not match the schema twice: {problem}", provider=provider.name)
        except ProviderError as exc:
            log.warning("provider failed", extra={"provider": provider.name, "error": str(exc)})
            failed = ProviderResult(provider=provider.name, model=model, role=role, ok=False, error=str(exc))
            if usage is not None:
                failed.usage = usage
            return Answer(None, failed)
        return Answer(assessment, ProviderResult(provider=provider.name, model=reply.model, role=role, ok=True,
                                                 assessment=assessment, usage=usage))

    def _cached(self, result: AnalysisResult, key: str) -> ProviderResult | None:
        if self.cache is None or not result.media.sha256:
            return None
        stored = self.cache.get(result.media.sha256, key)
        if stored is None:
            return None
        cached = ProviderResult.model_validate_json(stored)
        cached.cached = True
        return cached

    # -- the second opinion ----------------------------------------------------------------------
    def _verify(self, result: AnalysisResult, answered: str, request: ChatRequest) -> Verification | None:
        verifier = self.settings.reasoning.verifier
        first = result.assessment
        if verifier is None:
            return None
        if verifier == LOCAL or verifier == answered or verifier not in self.providers:
            return _local_second_opinion(result, first)
        again = replace(request, user=request.user + "\n\nA first reviewer concluded (JSON): "
                        + first.model_dump_json(exclude={"source"})
                        + "\nRe-judge the evidence independently; you may disagree.")
        answer = self._ask(verifier, again, result, role="verification")
        result.provider_results.append(answer.result)
        second = answer.assessment
        if second is None:
            return Verification(verifier=verifier, verdict="unverified", checks=[f"{verifier} failed: {answer.result.error}"],
                                final_category=first.category, final_severity=first.severity)
        agrees = _same_finding(first, second)
        return Verification(
            verifier=verifier, verdict="confirmed" if agrees else "disputed", agrees=agrees,
            checks=[f"{verifier} found {second.category or 'nothing'} (severity {second.severity}, "
                    f"confidence {second.confidence:.2f}): {second.reasoning_summary}"],
            final_category=first.category, final_severity=first.severity)


def on_premise_models(settings: Settings) -> Settings:
    """Seed 000's ``local_llm_size``: the on-premise provider runs the model of that size, and re-judges what
    another provider found (its ``cross_verification``) when the verifier is left to the local evidence."""
    reasoning = settings.reasoning
    if reasoning.local_llm_size is None:
        return settings
    model = reasoning.local_models[reasoning.local_llm_size]
    entry = settings.providers[reasoning.local_provider].model_copy(
        update={"model": model, "fast_model": None, "detailed_model": None})
    verifier = reasoning.local_provider if reasoning.verifier == LOCAL else reasoning.verifier
    return settings.model_copy(update={
        "providers": {**settings.providers, reasoning.local_provider: entry},
        "reasoning": reasoning.model_copy(update={"verifier": verifier})})


def json_object(text: str) -> tuple[dict[str, Any] | None, str]:
    """The JSON object in a model's answer, after the usual repairs (code fences, prose around it); or why not."""
    body = re.sub(r"^\s*```(?:json)?|```\s*$", "", text.strip(), flags=re.IGNORECASE)
    start, end = body.find("{"), body.rfind("}")
    if start < 0 or end <= start:
        return None, "no JSON object in the answer"
    try:
        data = json.loads(body[start:end + 1])
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON ({exc.msg} at character {exc.pos})"
    return (data, "") if isinstance(data, dict) else (None, "the JSON is not an object")


def parse_assessment(text: str, categories: dict[str, Category], source: str) -> tuple[Assessment | None, str]:
    """The answer as an Assessment, repaired as ``json_object`` does; or why not."""
    data, problem = json_object(text)
    if data is None:
        return None, problem
    data["source"] = source
    if data.get("category") is not None and data["category"] not in categories:
        return None, f"unknown category '{data['category']}'"
    try:
        return Assessment.model_validate(data), ""
    except ValidationError as exc:
        return None, "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])


def _same_finding(first: Assessment, second: Assessment) -> bool:
    if first.crime_detected != second.crime_detected:
        return False
    return not first.crime_detected or (first.category == second.category and abs(first.severity - second.severity) <= 1)


def _local_second_opinion(result: AnalysisResult, first: Assessment) -> Verification:
    """The local evidence re-judging a provider's finding: agreement means the same category (or both quiet)."""
    local = result.local_analysis
    agrees = (first.crime_detected == local.crime_detected
              and (not first.crime_detected or first.category == local.category))
    own = local_verification(result)
    checks = [f"local models found {local.category or 'nothing'} (severity {local.severity}, "
              f"confidence {local.confidence:.2f})", *(own.checks if own else [])]
    return Verification(verifier=LOCAL, verdict="confirmed" if agrees else "disputed", agrees=agrees, checks=checks,
                        final_category=first.category, final_severity=first.severity)


def decide(assessment: Assessment, verification: Verification, rules: DecisionRules) -> tuple[Assessment, Verification]:
    """Apply the decision rules to a finding and its second opinion."""
    rule = (f"findings of severity >= {rules.require_agreement_from_severity} need the verifier's agreement; "
            f"on disagreement: {rules.on_disagreement}")
    needs = assessment.crime_detected and assessment.severity >= rules.require_agreement_from_severity
    if not needs or verification.agrees is not False or rules.on_disagreement == "keep":
        decision = "kept as found" if verification.agrees is not False else "kept as found despite the disagreement"
        return assessment, verification.model_copy(update={"rule": rule, "decision": decision})
    if rules.on_disagreement == "downgrade":
        severity = max(1, assessment.severity - 1)
        final = assessment.model_copy(update={
            "severity": severity, "threat_severity_index": threat_severity_index(severity, assessment.confidence)})
        decision = f"downgraded from severity {assessment.severity} to {severity}"
    else:
        final = assessment.model_copy(update={"crime_detected": False, "threat_severity_index": 0.0})
        decision = "dismissed: no incident is reported"
    return final, verification.model_copy(update={
        "rule": rule, "decision": decision, "final_category": final.category if final.crime_detected else None,
        "final_severity": final.severity})


def _cache_key(result: AnalysisResult, provider: str, model: str, request: ChatRequest, role: str) -> str:
    digest = hashlib.sha256()
    for part in (role, provider, model, request.tier, request.system, request.user, *request.images_jpeg,
                 request.audio_wav or b""):
        digest.update(part if isinstance(part, bytes) else part.encode())
        digest.update(b"\0")
    return f"reasoning:{result.config_hash}:{digest.hexdigest()}"


def _add(a: ProviderUsage, b: ProviderUsage) -> ProviderUsage:
    return a.model_copy(update={
        "input_tokens": a.input_tokens + b.input_tokens, "output_tokens": a.output_tokens + b.output_tokens,
        "cost_usd": None if a.cost_usd is None and b.cost_usd is None else (a.cost_usd or 0) + (b.cost_usd or 0),
        "latency_ms": a.latency_ms + b.latency_ms, "attempts": a.attempts + b.attempts})
