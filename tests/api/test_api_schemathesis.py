"""Property-based requests generated from the served OpenAPI document: whatever comes in, never a 5xx."""

from __future__ import annotations

import re

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error

# Operations that could lock the fuzzing admin out (revoke its key, disable or demote it); other tests cover them.
LOCKOUT_OPERATIONS = re.compile(r"^(DELETE /api/v1/keys/\{key_id\}|POST /api/v1/users/\{user_id\}/disable"
                                r"|PATCH /api/v1/users/\{user_id\})$")
# Live views stream until the client leaves (a camera the fuzzer added may be running): tests/api/test_api_live.py.
ENDLESS_OPERATIONS = re.compile(r"^GET (/video_stream|/cameras/\{name\}/stream\.mjpeg)$")
EXAMPLES_PER_OPERATION = 8


def test_no_request_makes_a_server_error(strict_server):
    # Loaded from the running server; driven by hand because schemathesis' lazy pytest loader
    # does not run under this pytest version.
    schema = schemathesis.openapi.from_url(f"{strict_server.url}/openapi.json")
    headers = {"X-API-Key": strict_server.admin_key}
    failures: dict[str, str] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        label = f"{operation.method.upper()} {operation.path}"
        if LOCKOUT_OPERATIONS.match(label) or ENDLESS_OPERATIONS.match(label):
            continue

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        try:
            fuzz()
        except Exception as exc:  # collect every operation's failure, then report them together
            failures[label] = str(exc)[:2000]
    assert len(operations) >= 30
    assert not failures, "\n\n".join(f"{label}:\n{message}" for label, message in failures.items())
