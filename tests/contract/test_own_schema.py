"""Our published OpenAPI (drf-spectacular, /api/schema/) matches what every route really does."""

from __future__ import annotations

import schemathesis

from tests.contract.conftest import (
    CONTRACT_SETTINGS,
    OWN_SCHEMA,
    ContractSession,
    error_answer_is_error_response,
    schema_valid_input_is_accepted,
)


@OWN_SCHEMA.parametrize()
@CONTRACT_SETTINGS
def test_operation_conforms_to_our_schema(case: schemathesis.Case, contract_session: ContractSession):
    contract_session.authenticate(case)
    try:
        case.call_and_validate(
            # schemathesis' positive_data_acceptance wants every schema-valid request accepted,
            # but some 400s are deliberate and no schema can state their reason (an unparseable
            # phone number, the CRM refusing an API key). `schema_valid_input_is_accepted`
            # allows exactly those and still fails wherever our schema is looser than our
            # validation. Every other default check runs (our schema declares no security
            # scheme, so ignored_auth has nothing to check; test_appconnect_openapi.py covers
            # refusals without usable credentials).
            excluded_checks=[schemathesis.checks.positive_data_acceptance],
            additional_checks=[schema_valid_input_is_accepted, error_answer_is_error_response],
        )
    finally:
        contract_session.restore_after(case)
