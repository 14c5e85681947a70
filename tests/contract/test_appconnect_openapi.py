"""Every App Connect route we serve conforms to App Connect's own public OpenAPI.

The document is App Connect's (`appconnect-openapi.json`, found by `appconnect_openapi_find`),
never a copy in this repository. Conformance means documented status codes, content types,
response schemas and headers, and no server error for any input schemathesis generates.
"""

from __future__ import annotations

import json

import pytest
import schemathesis

from tests.contract.conftest import (
    CONTRACT_SETTINGS,
    OWN_SCHEMA,
    SCHEMATHESIS_CONFIG,
    SERVED_OPERATIONS,
    WSGI_APP,
    ContractSession,
    appconnect_openapi_find,
    error_answer_is_error_response,
)

APPCONNECT_OPENAPI, NOT_FOUND = appconnect_openapi_find()
DOCUMENT = json.loads(APPCONNECT_OPENAPI.read_text(encoding="utf-8")) if APPCONNECT_OPENAPI else {}

# Not run here, on purpose:
# - positive_data_acceptance: we deliberately refuse some input the document allows and the
#   peer takes (unparseable phone numbers, a blank session id, a negative duration). The
#   product bar allows that when the answer is the document's ErrorResponse with a
#   returnMessage, which `error_answer_is_error_response` enforces on every 400.
# - negative_data_rejection: the bar is about what we answer, not about refusing everything the
#   document would not generate; like the peer we take e.g. numeric ids where it says string.
#   Accepting such input still must not make us answer off-schema, which the checks below catch.
# - ignored_auth: it expects 401 or 403 without credentials, while the document (BadRequest:
#   "missing authentication") and the peer answer 400. test_without_usable_credentials_* below
#   checks that every secured route refuses such requests with a documented answer.
# - object_level_authorization: needs a second identity and resources addressed by id in the
#   path; none of these routes has one.
APPCONNECT_CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.missing_required_header,
    schemathesis.checks.unsupported_method,
    schemathesis.checks.allow_header_conformance,
    schemathesis.checks.use_after_free,
    schemathesis.checks.ensure_resource_availability,
    error_answer_is_error_response,
]
# What a refused request is held to (it carries no valid input to fuzz).
DOCUMENTED_ANSWER_CHECKS = [
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.response_headers_conformance,
]


def test_appconnect_openapi_is_found():
    """Never skipped: without the document there is no conformance to check, so this fails
    (and the tests below, which need it, are not built)."""
    assert APPCONNECT_OPENAPI is not None, NOT_FOUND
    assert str(DOCUMENT.get("openapi", "")).startswith("3."), f"{APPCONNECT_OPENAPI} is not OpenAPI 3"


if APPCONNECT_OPENAPI is not None:
    DOCUMENTED_OPERATIONS = {
        (method.upper(), path)
        for path, item in DOCUMENT["paths"].items()
        for method in item
        if method in {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
    }

    def _requires_credentials(method: str, path: str) -> bool:
        security = DOCUMENT["paths"][path][method.lower()].get("security", DOCUMENT.get("security"))
        return bool(security) and all(security)  # `{}` among the alternatives: anonymous is fine

    SECURED_OPERATIONS = sorted(
        operation for operation in SERVED_OPERATIONS if _requires_credentials(*operation)
    )

    schema = schemathesis.openapi.from_path(APPCONNECT_OPENAPI, config=SCHEMATHESIS_CONFIG).include(
        lambda ctx: (ctx.operation.method.upper(), ctx.operation.path) in SERVED_OPERATIONS
    )
    schema.app = WSGI_APP

    def test_served_operations_are_documented_by_appconnect():
        assert sorted(SERVED_OPERATIONS - DOCUMENTED_OPERATIONS) == []

    def test_every_appconnect_operation_we_serve_is_listed():
        """Our schema (every route we serve) against SERVED_OPERATIONS: each App Connect
        operation we serve must be fuzzed here, and each listed one must really be served."""
        served = {
            (method.upper(), path) for path, item in OWN_SCHEMA.raw_schema["paths"].items() for method in item
        }
        assert sorted((served & DOCUMENTED_OPERATIONS) - SERVED_OPERATIONS) == [], (
            "Add these App Connect operations to SERVED_OPERATIONS in tests/contract/conftest.py"
        )
        assert sorted(SERVED_OPERATIONS - served) == [], "Listed in SERVED_OPERATIONS but not served"

    @schema.parametrize()
    @CONTRACT_SETTINGS
    def test_operation_conforms_to_appconnect_openapi(
        case: schemathesis.Case, contract_session: ContractSession
    ):
        contract_session.authenticate(case)
        try:
            case.call_and_validate(checks=APPCONNECT_CHECKS)
        finally:
            contract_session.restore_after(case)

    @pytest.mark.django_db(transaction=True)
    @pytest.mark.parametrize(
        ("method", "path"), SECURED_OPERATIONS, ids=[" ".join(op) for op in SECURED_OPERATIONS]
    )
    def test_without_usable_credentials_the_refusal_is_documented(method: str, path: str, ringcentral: str):
        """No credentials, forged ones, and forged ones in the legacy query: each is refused
        with a documented 4xx (App Connect answers 400, not 401, for missing authentication)."""
        for credentials in (
            {},
            {"headers": {"Authorization": "Bearer not.a.jwt", "X-RC-Access-Token": "not-a-token"}},
            {"query": {"jwtToken": "not.a.jwt", "rcAccessToken": "not-a-token"}},
        ):
            case = schema[path][method].Case(**credentials)
            response = case.call()
            assert 400 <= response.status_code < 500, f"{credentials}: {response.status_code} {response.text}"
            case.validate_response(response, checks=DOCUMENTED_ANSWER_CHECKS)
