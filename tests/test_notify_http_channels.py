"""The SMS (Twilio), Resend and Apprise channels.

Twilio and Resend are replayed with respx from the bodies under data/channel_replies, which follow each
API's documented format; no request leaves this machine. Apprise sends for real, to an HTTP server on
127.0.0.1, through its json:// and ntfy:// plugins.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from apprise import NotifyType
from loopback_http import LoopbackServer, Reply

from watchkeeper.config import ResendSettings, TwilioSettings
from watchkeeper.notify.apprise_channel import apprise_sender, notify_type
from watchkeeper.notify.message import AlertMessage, plain_text, short_text
from watchkeeper.notify.email import html_body
from watchkeeper.notify.resend import resend_sender
from watchkeeper.notify.sms import sms_sender
from watchkeeper.store.models import Delivery

pytestmark = pytest.mark.filterwarnings("ignore:'imghdr' is deprecated:DeprecationWarning")  # Apprise's, not ours

REPLIES = Path(__file__).parent / "data" / "channel_replies"
SID = "AC0123456789abcdef0123456789abcdef"
TOKEN = "twilio-auth-token-9f8e7d6c5b4a"
TWILIO = TwilioSettings(account_sid=SID, auth_token=TOKEN, from_number="+15017122661")
TWILIO_URL = f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Messages.json"
RESEND_KEY = "re_test_5f4d3c2b1a0987654321"
RESEND = ResendSettings(api_key=RESEND_KEY, sender="Watchkeeper <alerts@watch.example.org>")
RESEND_URL = "https://api.resend.com/emails"
FAKE_TOKEN = "tk_FAKEntfyTOKEN0123456789"


def alert(**fields: Any) -> AlertMessage:
    values: dict[str, Any] = dict(
        kind="incident", event="opened", incident_id="inc_8f3a", title="Sev 4 High: fight at Loading dock (cam-dock-2)",
        severity=4, severity_label="High", severity_color="#d1242f", severity_word="high", confidence=0.87,
        camera="cam-dock-2", location="Loading dock", summary="Two people exchanging blows near bay 3.",
        occurred_at=datetime(2025, 10, 14, 21, 7, 5, tzinfo=UTC),
        immediate_actions=["Send security to bay 3", "Call the police if it continues"],
        links={"incident": "https://watch.example.org/incidents/inc_8f3a",
               "acknowledge": "https://watch.example.org/ack/tok_5b1e"})
    values.update(fields)
    return AlertMessage(**values)


def delivery(channel: str, target: str, message: AlertMessage | None = None, id: int = 42) -> Delivery:
    return Delivery(id=id, channel=channel, target=target, event="incident.opened",
                    payload=(message or alert()).model_dump(mode="json"))


def replay(name: str) -> httpx.Response:
    """The recorded body, under the status its file name starts with after the API's name."""
    status = int(name.split("_")[2][:3])
    return httpx.Response(status, content=(REPLIES / name).read_bytes(), headers={"Content-Type": "application/json"})


@pytest.fixture
def api():
    with respx.mock(assert_all_called=False) as mock:
        yield mock


# -- SMS through Twilio --------------------------------------------------------------------------

def test_sms_is_one_form_post_to_twilio(api):
    route = api.post(TWILIO_URL).mock(return_value=replay("twilio_message_201_queued.json"))
    outcome = sms_sender(TWILIO)(delivery("sms", "+15558675310"))
    assert outcome.ok and outcome.status_code == 201 and outcome.error is None
    request = route.calls.last.request
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = parse_qs(request.content.decode(), strict_parsing=True)
    assert form == {"To": ["+15558675310"], "From": ["+15017122661"], "Body": [short_text(alert())]}


def test_sms_uses_the_configured_api_base(api):
    route = api.post(f"http://127.0.0.1:9/twilio/2010-04-01/Accounts/{SID}/Messages.json").mock(
        return_value=replay("twilio_message_201_queued.json"))
    settings = TWILIO.model_copy(update={"api_base": "http://127.0.0.1:9/twilio/"})
    assert sms_sender(settings)(delivery("sms", "+15558675310")).ok and route.called


@pytest.mark.parametrize(("reply", "status", "retry", "said"), [
    ("twilio_error_400_21211.json", 400, False, "Twilio error 21211: Invalid 'To' Phone Number"),
    ("twilio_error_401_20003.json", 401, False, "Twilio error 20003: Authentication Error"),
    ("twilio_error_404_20404.json", 404, False, "Twilio error 20404: The requested resource"),
    ("twilio_error_429_20429.json", 429, True, "Twilio error 20429: Too Many Requests"),
    ("twilio_error_500_20500.json", 500, True, "Twilio error 20500: An internal server error"),
])
def test_sms_failures_are_classified_with_twilios_reason(api, reply, status, retry, said):
    api.post(TWILIO_URL).mock(return_value=replay(reply))
    outcome = sms_sender(TWILIO)(delivery("sms", "+1555867531XX"))
    assert (outcome.ok, outcome.status_code, outcome.retry) == (False, status, retry)
    assert outcome.error.startswith(f"HTTP {status}: {said}")
    assert TOKEN not in outcome.error


def test_sms_failure_without_twilios_body(api):
    api.post(TWILIO_URL).mock(return_value=httpx.Response(502, text="<html>Bad Gateway</html>"))
    outcome = sms_sender(TWILIO)(delivery("sms", "+15558675310"))
    assert (outcome.ok, outcome.status_code, outcome.error, outcome.retry) == (False, 502, "HTTP 502", True)


def test_sms_network_errors_are_retried(api):
    api.post(TWILIO_URL).mock(side_effect=httpx.ConnectError("[Errno 111] Connection refused"))
    outcome = sms_sender(TWILIO)(delivery("sms", "+15558675310"))
    assert (outcome.ok, outcome.status_code, outcome.retry) == (False, None, True)
    assert outcome.error == "Twilio unreachable: ConnectError: [Errno 111] Connection refused"


def test_sms_needs_complete_settings():
    with pytest.raises(ValueError, match="auth_token"):
        sms_sender(TwilioSettings(account_sid=SID, from_number="+15017122661"))


def test_a_payload_that_is_not_an_alert_is_dead_on_every_channel(api):
    bad = Delivery(id=1, channel="sms", target="+15558675310", event="incident.opened", payload={"title": "x"})
    for sender in (sms_sender(TWILIO), resend_sender(RESEND), apprise_sender()):
        outcome = sender(bad)
        assert (outcome.ok, outcome.retry) == (False, False)
        assert outcome.error.startswith("payload is not an alert message")
    assert not api.calls


# -- e-mail through Resend -----------------------------------------------------------------------

def test_resend_posts_the_email_with_an_idempotency_key(api):
    route = api.post(RESEND_URL).mock(return_value=replay("resend_email_200_sent.json"))
    outcome = resend_sender(RESEND)(delivery("resend", "oncall@example.org"))
    assert outcome.ok and outcome.status_code == 200
    request = route.calls.last.request
    assert request.headers["Authorization"] == f"Bearer {RESEND_KEY}"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == {
        "from": "Watchkeeper <alerts@watch.example.org>", "to": ["oncall@example.org"],
        "subject": alert().title, "text": plain_text(alert()), "html": html_body(alert())}
    assert request.headers["Idempotency-Key"].startswith("watchkeeper-delivery-42-")
    assert len(request.headers["Idempotency-Key"]) <= 256


def test_resend_idempotency_key_is_stable_across_retries_and_unique_otherwise(api):
    route = api.post(RESEND_URL).mock(return_value=replay("resend_email_200_sent.json"))
    send = resend_sender(RESEND)
    send(delivery("resend", "oncall@example.org"))
    send(delivery("resend", "oncall@example.org"))  # the same delivery, tried again
    send(delivery("resend", "oncall@example.org", id=43))
    send(delivery("resend", "oncall@example.org", alert(incident_id="inc_other")))  # same id, other database
    send(delivery("resend", "boss@example.org"))
    keys = [call.request.headers["Idempotency-Key"] for call in route.calls]
    assert keys[0] == keys[1]
    assert len(set(keys)) == 4


@pytest.mark.parametrize(("reply", "status", "retry", "said"), [
    ("resend_error_422.json", 422, False, "validation_error: Invalid `to` field."),
    ("resend_error_401.json", 401, False, "missing_api_key: Missing API key"),
    ("resend_error_403.json", 403, False, "invalid_api_key: API key is invalid"),
    ("resend_error_409.json", 409, True, "concurrent_idempotent_requests: Same idempotency key"),
    ("resend_error_429.json", 429, True, "rate_limit_exceeded: Too many requests."),
    ("resend_error_500.json", 500, True, "internal_server_error: An unexpected error occurred."),
])
def test_resend_failures_are_classified_with_resends_reason(api, reply, status, retry, said):
    api.post(RESEND_URL).mock(return_value=replay(reply))
    outcome = resend_sender(RESEND)(delivery("resend", "not-an-address"))
    assert (outcome.ok, outcome.status_code, outcome.retry) == (False, status, retry)
    assert outcome.error.startswith(f"HTTP {status}: {said}")
    assert RESEND_KEY not in outcome.error


def test_resend_network_errors_are_retried(api):
    api.post(RESEND_URL).mock(side_effect=httpx.ReadTimeout("timed out"))
    outcome = resend_sender(RESEND)(delivery("resend", "oncall@example.org"))
    assert (outcome.ok, outcome.retry, outcome.error) == (False, True, "Resend unreachable: ReadTimeout: timed out")


def test_resend_needs_complete_settings():
    with pytest.raises(ValueError, match="sender"):
        resend_sender(ResendSettings(api_key=RESEND_KEY))


# -- chat and push through Apprise ---------------------------------------------------------------

@pytest.fixture
def app_log():
    """Every line the application's log would show at DEBUG (its handler is on the root logger, like
    logging_setup's; pytest's caplog also hooks loggers that do not propagate, so it cannot tell)."""
    lines: list[str] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield lines
    root.setLevel(level)
    root.removeHandler(handler)

def test_notify_type_follows_severity():
    assert [notify_type(s) for s in range(1, 6)] == [NotifyType.INFO, NotifyType.INFO, NotifyType.WARNING,
                                                      NotifyType.FAILURE, NotifyType.FAILURE]


def test_apprise_json_send_carries_title_and_text():
    with LoopbackServer() as server:
        server.replies["/hooks/wk"] = Reply(200, b"{}")
        outcome = apprise_sender()(delivery("apprise", f"json://127.0.0.1:{server.port}/hooks/wk"))
        [received] = server.received
    assert outcome.ok and outcome.error is None
    body = json.loads(received.body)
    assert (received.method, received.path) == ("POST", "/hooks/wk")
    assert body["title"] == alert().title and body["message"] == plain_text(alert()).rstrip()
    assert body["type"] == "failure"  # severity 4


def test_apprise_ntfy_send_with_a_token():
    with LoopbackServer() as server:
        server.replies["/"] = Reply(200, b'{"id":"hwQ2YpKdmg","event":"message","topic":"dock-alerts"}')
        outcome = apprise_sender()(delivery("apprise", f"ntfy://{FAKE_TOKEN}@127.0.0.1:{server.port}/dock-alerts",
                                            alert(severity=3)))
        [received] = server.received
    assert outcome.ok
    assert received.headers["authorization"] == f"Bearer {FAKE_TOKEN}"
    body = json.loads(received.body)
    assert body["topic"] == "dock-alerts"
    assert body["title"] == alert().title and body["message"] == plain_text(alert(severity=3)).rstrip()


def test_apprise_server_error_is_retried_with_the_reason_and_no_secret(app_log):
    echo = json.dumps({"code": 50001, "error": f"internal error for token {FAKE_TOKEN}"}).encode()
    with LoopbackServer() as server:
        server.replies["/"] = Reply(500, echo)
        url = f"ntfy://{FAKE_TOKEN}@127.0.0.1:{server.port}/dock-alerts"
        outcome = apprise_sender()(delivery("apprise", url))
        assert len(server.received) == 1  # no retries inside Apprise: the dispatcher decides
    assert (outcome.ok, outcome.retry) == (False, True)
    assert outcome.error.startswith("ntfy: ") and "500" in outcome.error
    assert FAKE_TOKEN not in outcome.error and url not in outcome.error
    assert not any(FAKE_TOKEN in line for line in app_log)


def test_apprise_connection_refused_is_retried():
    with LoopbackServer() as server:
        port = server.port
    outcome = apprise_sender(timeout_s=5)(delivery("apprise", f"json://user:{FAKE_TOKEN}@127.0.0.1:{port}/x"))
    assert (outcome.ok, outcome.retry) == (False, True)
    assert outcome.error.startswith("JSON: ") and FAKE_TOKEN not in outcome.error


@pytest.mark.parametrize(("url", "error"), [
    (f"nosuchservice://{FAKE_TOKEN}@example.org", "not a valid Apprise URL (nosuchservice://)"),
    (f"pover://{FAKE_TOKEN}", "not a valid Apprise URL (pover://)"),  # no user key
    ("json://", "not a valid Apprise URL (json://)"),
    (f"https://hooks.example.org/{FAKE_TOKEN}", "not a valid Apprise URL (https://)"),
    (FAKE_TOKEN, "not a valid Apprise URL"),
])
def test_apprise_invalid_urls_are_dead_and_not_quoted(url, error):
    outcome = apprise_sender()(delivery("apprise", url))
    assert (outcome.ok, outcome.retry, outcome.error) == (False, False, error)


def test_apprise_ignores_plugins_and_configuration_in_the_home_directory(tmp_path, monkeypatch):
    marker = tmp_path / "plugin-was-imported"
    plugin = (f"from pathlib import Path\nPath({str(marker)!r}).touch()\n"
              "from apprise.decorators import notify\n"
              "@notify(on='wkhome')\ndef send(body, title, notify_type, *args, **kwargs):\n    return True\n")
    for folder in (tmp_path / ".apprise" / "plugins", tmp_path / ".config" / "apprise" / "plugins"):
        folder.mkdir(parents=True)
        (folder / "wk_home_plugin.py").write_text(plugin)
    (tmp_path / ".config" / "apprise" / "apprise.yml").write_text("urls:\n  - wkhome://anything\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    outcome = apprise_sender()(delivery("apprise", "wkhome://anything"))
    assert (outcome.ok, outcome.retry, outcome.error) == (False, False, "not a valid Apprise URL (wkhome://)")
    assert not marker.exists()


def test_concurrent_apprise_sends_keep_their_own_outcomes():
    send = apprise_sender(timeout_s=10)
    outcomes: dict[str, Any] = {}
    with LoopbackServer() as server:
        for n in range(6):
            server.replies[f"/t{n}"] = Reply(200 if n % 2 else 503, b"{}", delay_s=0.2)

        def run(n: int) -> None:
            outcomes[f"t{n}"] = send(delivery("apprise", f"json://127.0.0.1:{server.port}/t{n}", id=n))

        threads = [threading.Thread(target=run, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
    for n in range(6):
        outcome = outcomes[f"t{n}"]
        assert outcome.ok is bool(n % 2)
        if not outcome.ok:
            assert outcome.retry and outcome.error.count("503") == 1  # its own reason, nobody else's
