"""The proxy connector's engine: templates, URLs, paths and config validation (no Django).

What a template renders to follows App Connect's `engine.renderTemplateString` and
`getByPath` (crm-connectors.md §3.4); URLs are made safer than App Connect's on purpose
(§3.6): every placed value is percent-encoded, hosts are allow-listed, secrets stay out
of URLs, and templates name only their operation's variables.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from connector.crm.proxy import (
    UnsafeUrl,
    config_errors,
    get_by_path,
    iso_time,
    join_url,
    phone_number_parse,
    render,
    render_url,
)

SAMPLE = Path(__file__).resolve().parents[2] / "crm_fakes" / "proxy_sample.json"

CONTEXT: dict[str, Any] = {
    "phoneNumber": "+14155550100",
    "count": 3,
    "ratio": 2.5,
    "flag": True,
    "nothing": None,
    "contactInfo": {"id": "1001", "name": "Jane Roe", "phones": [{"number": "+1 415"}, {"number": "+44 20"}]},
    "callLog": {"direction": "Inbound", "legs": [1, 2]},
}


def sample() -> dict[str, Any]:
    return json.loads(SAMPLE.read_text())


def minimal(**operations: Any) -> dict[str, Any]:
    """A small valid config (App Connect's docs' minimal example, rewritten) with `operations`."""
    return {
        "meta": {"name": "acmeCrm", "displayName": "Acme CRM", "logFormat": "text/plain"},
        "auth": {"type": "apiKey", "scheme": "Bearer", "credentialTemplate": "{{apiKey}}", "encode": "none"},
        "requestDefaults": {
            "baseUrl": "https://api.acme.example/v2",
            "defaultHeaders": {"Accept": "application/json"},
        },
        "operations": operations or {"getUserInfo": {"url": "/me", "responseMapping": {"idPath": "body.id"}}},
    }


# --- templates ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{count}}", 3),
        ("{{ratio}}", 2.5),
        ("{{flag}}", True),
        ("{{nothing}}", None),
        ("{{missing}}", None),
        ("{{contactInfo}}", CONTEXT["contactInfo"]),
        ("{{callLog.legs}}", [1, 2]),
        ("{{ contactInfo.name }}", "Jane Roe"),
        ("{{contactInfo.phones.1.number}}", "+44 20"),
        ("{{contactInfo.phones.7.number}}", None),
    ],
)
def test_a_string_that_is_one_expression_keeps_the_values_type(template: str, expected: Any) -> None:
    assert render(template, CONTEXT) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Call with {{contactInfo.name}} ({{count}})", "Call with Jane Roe (3)"),
        ("[{{missing}}][{{nothing}}]", "[][]"),
        ("{{flag}}/{{ratio}}", "true/2.5"),
        ("legs={{callLog.legs}}", "legs=[1,2]"),
        ("{{contactInfo.phones.0.number}} then {{contactInfo.phones.1.number}}", "+1 415 then +44 20"),
        ("no templates here", "no templates here"),
        ("{{unclosed", "{{unclosed"),
    ],
)
def test_expressions_inside_text_are_written_as_text(template: str, expected: str) -> None:
    assert render(template, CONTEXT) == expected


def test_render_walks_dicts_and_lists_and_leaves_keys_and_other_values_alone() -> None:
    template = {
        "{{count}}": "{{count}}",
        "people": [{"id": "{{contactInfo.id}}", "kind": 3}, "{{flag}}"],
        "subject": "{{callLog.direction}} call",
        "done": False,
        "none": None,
    }

    assert render(template, CONTEXT) == {
        "{{count}}": 3,
        "people": [{"id": "1001", "kind": 3}, True],
        "subject": "Inbound call",
        "done": False,
        "none": None,
    }


def test_a_body_leaves_out_what_has_no_value_as_json_stringify_leaves_out_undefined() -> None:
    template = {
        "subject": "{{missing}}",
        "note": "{{nothing}}",
        "text": "x{{missing}}",
        "list": ["{{missing}}"],
    }

    assert render(template, CONTEXT, drop_missing=True) == {"note": None, "text": "x", "list": [None]}
    assert render(template, CONTEXT) == {"subject": None, "note": None, "text": "x", "list": [None]}


def test_an_expression_that_is_not_a_dot_path_renders_nothing() -> None:
    assert render("{{ }}", CONTEXT) is None  # never the whole context
    assert render("a{{contactInfo..id}}b", CONTEXT) == "ab"
    assert render("{{$}}", CONTEXT) is None


def test_get_by_path_reads_keys_and_list_indexes() -> None:
    data = {"body": {"items": [{"id": 7}, {"id": 8}], "zero": 0, "empty": None}}

    assert get_by_path(data, "body.items.1.id") == 8
    assert get_by_path(data, "body.zero") == 0
    assert get_by_path(data, "body.empty") is None
    assert get_by_path(data, "body.items.2.id") is None
    assert get_by_path(data, "body.items.-1.id") is None
    assert get_by_path(data, "body.items.x") is None
    assert get_by_path(data, "body.zero.deeper") is None
    assert get_by_path(data, "$") is data and get_by_path(data, "") is data


# --- URLs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["a/b", "../../admin", "x?admin=1", "x#frag", "%2e%2e", "a b&c=d", "https://evil.example/"],
)
def test_a_value_cannot_change_a_urls_path(value: str) -> None:
    url = render_url("/activities/{{id}}/notes", {"id": value})

    parts = url.split("/")
    assert parts[:2] == ["", "activities"] and parts[3:] == ["notes"]
    assert unquote(parts[2]) == value
    assert "?" not in url and "#" not in url


def test_values_in_the_query_are_encoded_as_query_values() -> None:
    url = render_url("/contacts?phone={{p}}&name={{n}}", {"p": "+1 415&x=1", "n": "A#B"})

    assert url == "/contacts?phone=%2B1%20415%26x%3D1&name=A%23B"


def test_a_dot_segment_is_refused_whether_a_value_or_the_template_makes_it() -> None:
    with pytest.raises(UnsafeUrl):
        render_url("/activities/{{id}}", {"id": ".."})
    with pytest.raises(UnsafeUrl):
        render_url("/activities/.{{id}}", {"id": "."})
    with pytest.raises(UnsafeUrl):
        render_url("https://api.acme.example/v2/../admin", {})


def test_an_empty_value_in_the_path_is_refused_not_sent_to_the_collection() -> None:
    with pytest.raises(UnsafeUrl, match="thirdPartyLogId"):
        render_url("/activities/{{thirdPartyLogId}}", {})
    assert render_url("/activities?after={{missing}}", {}) == "/activities?after="


def test_a_url_is_joined_to_the_base_url_unless_absolute() -> None:
    base = "https://api.acme.example/v2/"
    assert join_url(base, "/contacts") == "https://api.acme.example/v2/contacts"
    assert join_url(base, "contacts") == "https://api.acme.example/v2/contacts"
    assert join_url(base, "//evil.example/x") == "https://api.acme.example/v2/evil.example/x"
    assert join_url(base, "https://api.acme.example/v3/x") == "https://api.acme.example/v3/x"


# --- phone numbers and times ----------------------------------------------------------


def test_a_parsed_phone_number_has_app_connects_fields() -> None:
    parsed = phone_number_parse("+14155550100")

    assert parsed["valid"] is True and parsed["countryCode"] == 1 and parsed["regionCode"] == "US"
    assert parsed["number"] == {
        "input": "+14155550100",
        "e164": "+14155550100",
        "international": "+1 415-555-0100",
        "national": "(415) 555-0100",
        "rfc3966": "tel:+1-415-555-0100",
        "significant": "4155550100",
    }
    assert phone_number_parse("101") == {"valid": False, "possible": False, "number": {"input": "101"}}


def test_times_are_written_as_moments_iso_strings() -> None:
    assert iso_time("2024-05-01T10:00:00Z") == "2024-05-01T10:00:00.000Z"
    assert iso_time(1714557600000, plus_seconds=90) == "2024-05-01T10:01:30.000Z"
    assert iso_time("2024-05-01T12:00:00+02:00", plus_seconds="30") == "2024-05-01T10:00:30.000Z"
    assert iso_time("2024-05-01T10:00:00Z", plus_seconds="pending") is None
    assert iso_time(None) is None and iso_time("soon") is None


# --- valid configs --------------------------------------------------------------------


def test_the_sample_config_is_valid() -> None:
    assert config_errors(sample()) == []


def test_the_minimal_config_is_valid_and_http_is_allowed_on_loopback_only() -> None:
    assert config_errors(minimal()) == []
    config = minimal()
    config["requestDefaults"]["baseUrl"] = "http://127.0.0.1:8080/api"
    assert config_errors(config) == []


def test_an_absolute_url_on_an_allowed_host_is_valid() -> None:
    config = minimal(findContact={"url": "https://search.acme.example/people?q={{phoneNumber}}"})
    config["requestDefaults"]["allowedHosts"] = ["search.acme.example"]

    assert config_errors(config) == []


def test_app_connects_descriptive_mapping_type_and_empty_paths_are_accepted() -> None:
    config = minimal(
        findContact={
            "url": "/people",
            "query": {"phone": "{{parsedPhoneNumber.number.significant}}"},
            "responseMapping": {
                "type": "list",
                "listPath": "body.people",
                "item": {"idPath": "id", "typePath": ""},
            },
        }
    )

    assert config_errors(config) == []


# --- refused configs ------------------------------------------------------------------


def refused(mutate: Any) -> list[str]:
    config = copy.deepcopy(sample())
    mutate(config)
    return config_errors(config)


def op(config: dict[str, Any], name: str) -> dict[str, Any]:
    return config["operations"][name]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(
            lambda c: c["operations"].update(deleteEverything={"url": "/x"}),
            "operations.deleteEverything: unknown operation (known: getUserInfo, findContact",
            id="unknown-operation",
        ),
        pytest.param(
            lambda c: op(c, "findContact")["query"].update(phone="{{phone}}"),
            "operations.findContact.query.phone: {{phone}} names an unknown variable 'phone' "
            "(findContact has: ",
            id="unknown-variable",
        ),
        pytest.param(
            lambda c: op(c, "createCallLog")["body"]["linked_contacts"][0].update(
                contact_id="{{contact.id}}"
            ),
            "operations.createCallLog.body.linked_contacts.0.contact_id: {{contact.id}} names an unknown "
            "variable",
            id="unknown-variable-deep-in-a-body",
        ),
        pytest.param(
            lambda c: op(c, "getCallLog").update(url="/activities/{{logKey}}"),
            "operations.getCallLog.url: {{logKey}} names an unknown variable 'logKey'",
            id="variable-of-another-operation",
        ),
        pytest.param(
            lambda c: c["requestDefaults"]["defaultHeaders"].update({"X-Phone": "{{phoneNumber}}"}),
            "requestDefaults.defaultHeaders.X-Phone: {{phoneNumber}} names an unknown variable 'phoneNumber' "
            "(every operation has: apiKey, authHeader, secretKey, user)",
            id="operation-variable-in-default-headers",
        ),
        pytest.param(
            lambda c: op(c, "findContact").update(method="FETCH"),
            "operations.findContact.method: 'FETCH' is not one of GET, POST, PUT, PATCH, DELETE",
            id="bad-method",
        ),
        pytest.param(
            lambda c: op(c, "getCallLog").update(body={"x": 1}),
            "operations.getCallLog.body: a GET request has no body; use query",
            id="body-on-get",
        ),
        pytest.param(
            lambda c: op(c, "createCallLog").update(url="https://collector.evil.example/activities"),
            "operations.createCallLog.url: goes to host 'collector.evil.example', which is neither the "
            "baseUrl's host (api.restcrm.example) nor in requestDefaults.allowedHosts",
            id="absolute-url-to-another-host",
        ),
        pytest.param(
            lambda c: op(c, "findContact").update(url="https://{{user.hostname}}/contacts"),
            "operations.findContact.url: the scheme and host may not be templated",
            id="templated-host",
        ),
        pytest.param(
            lambda c: op(c, "findContact").update(
                url="https://api.restcrm.example{{user.hostname}}/contacts"
            ),
            "operations.findContact.url: the scheme and host may not be templated",
            id="template-glued-to-the-host",
        ),
        pytest.param(
            lambda c: op(c, "findContact").update(url="https:{{user.hostname}}"),
            "operations.findContact.url: 'https:{{user.hostname}}' must be a path (/…), or an absolute "
            "http(s)://host/… URL",
            id="scheme-without-host",
        ),
        pytest.param(
            lambda c: op(c, "findContact").update(url="file:///etc/passwd"),
            "operations.findContact.url: must be https (http only for 127.0.0.1 or localhost)",
            id="file-url",
        ),
        pytest.param(
            lambda c: op(c, "findContact").update(url="https://me:pw@api.restcrm.example/contacts"),
            "operations.findContact.url: may not carry credentials (user@host)",
            id="credentials-in-url",
        ),
        pytest.param(
            lambda c: op(c, "findContact").update(url="/contacts/{{apiKey}}"),
            "operations.findContact.url: {{apiKey}} would put a secret in the URL; send it in a header",
            id="api-key-in-url",
        ),
        pytest.param(
            lambda c: op(c, "findContact")["query"].update(token="{{user.accessToken}}"),
            "operations.findContact.query.token: {{user.accessToken}} would put a secret in the URL",
            id="token-in-query",
        ),
        pytest.param(
            lambda c: op(c, "findContact")["query"].update(key="x{{secretKey}}"),
            "operations.findContact.query.key: {{secretKey}} would put a secret in the URL",
            id="secret-key-in-query",
        ),
        pytest.param(
            lambda c: op(c, "updateCallLog").update(url="/activities/{{thirdPartyLogId}}?a={{authHeader}}"),
            "operations.updateCallLog.url: {{authHeader}} would put a secret in the URL",
            id="auth-header-in-url",
        ),
        pytest.param(
            lambda c: op(c, "unAuthorize").update(url="/logout?who={{user}}"),
            "operations.unAuthorize.url: {{user}} would put a secret in the URL",
            id="whole-user-in-url",
        ),
        pytest.param(
            lambda c: op(c, "getUserInfo").update(url="/login?pw={{additionalInfo.password}}"),
            "operations.getUserInfo.url: {{additionalInfo.password}} would put a secret in the URL",
            id="password-in-url",
        ),
        pytest.param(
            lambda c: c["requestDefaults"].update(baseUrl="http://api.restcrm.example/v1"),
            "requestDefaults.baseUrl: must be an https URL (http only for 127.0.0.1 or localhost)",
            id="plain-http-base-url",
        ),
        pytest.param(
            lambda c: c["requestDefaults"].update(baseUrl="https://{{user.hostname}}/v1"),
            "requestDefaults.baseUrl: may not be templated",
            id="templated-base-url",
        ),
        pytest.param(
            lambda c: c["requestDefaults"].update(baseUrl="api.restcrm.example/v1"),
            "requestDefaults.baseUrl: must be an https URL",
            id="base-url-without-scheme",
        ),
        pytest.param(
            lambda c: c["requestDefaults"].update(baseUrl="https://u:p@api.restcrm.example/v1"),
            "requestDefaults.baseUrl: may not carry credentials (user@host)",
            id="base-url-with-credentials",
        ),
        pytest.param(
            lambda c: c["requestDefaults"].pop("baseUrl"),
            "requestDefaults.baseUrl: is required",
            id="no-base-url",
        ),
        pytest.param(
            lambda c: c["requestDefaults"].update(allowedHosts=["*.evil.example"]),
            "requestDefaults.allowedHosts.0: must be a lower-case host name (api.example.com)",
            id="wildcard-allowed-host",
        ),
        pytest.param(
            lambda c: c["requestDefaults"].update(timeoutSeconds=0),
            "requestDefaults.timeoutSeconds: must be a number of seconds, above 0 and at most 300",
            id="zero-timeout",
        ),
        pytest.param(
            lambda c: op(c, "createCallLog")["responseMapping"].update(logIdPath="body.id"),
            "operations.createCallLog.responseMapping.logIdPath: unknown key (known: idPath, type)",
            id="unknown-mapping-key",
        ),
        pytest.param(
            lambda c: op(c, "updateCallLog").update(responseMapping={"idPath": "body.id"}),
            "operations.updateCallLog.responseMapping.idPath: unknown key (known: type)",
            id="mapping-for-an-operation-that-maps-nothing",
        ),
        pytest.param(
            lambda c: op(c, "findContact")["responseMapping"]["item"].update(idPath="{{id}}"),
            "operations.findContact.responseMapping.item.idPath: must be a dot path such as body.items.0.id",
            id="templated-mapping-path",
        ),
        pytest.param(
            lambda c: op(c, "createCallLog").update(bdy={}),
            "operations.createCallLog.bdy: unknown key (known: method, url, headers, query, body, auth, "
            "responseMapping)",
            id="misspelt-operation-key",
        ),
        pytest.param(
            lambda c: op(c, "findContact").pop("url"),
            "operations.findContact.url: is required",
            id="operation-without-url",
        ),
        pytest.param(lambda c: c.update(extra={}), "extra: unknown key", id="unknown-top-key"),
        pytest.param(lambda c: c.pop("auth"), "auth: is required", id="no-auth"),
        pytest.param(
            lambda c: c["meta"].update(name="rest crm!"),
            "meta.name: must start with a letter and hold only letters, digits, '_' and '-'",
            id="bad-name",
        ),
        pytest.param(
            lambda c: c["meta"].update(logFormat="text/rtf"),
            "meta.logFormat: must be one of text/plain, text/html, text/markdown",
            id="bad-log-format",
        ),
        pytest.param(
            lambda c: c["auth"].update(type="basic"), "auth.type: must be apiKey or oauth", id="bad-auth-type"
        ),
        pytest.param(
            lambda c: c["auth"].update(encode="hex"), "auth.encode: must be base64 or none", id="bad-encode"
        ),
        pytest.param(
            lambda c: c["auth"].update(credentialTemplate="{{additionalInfo.username}}"),
            "auth.credentialTemplate: {{additionalInfo.username}} names an unknown variable 'additionalInfo' "
            "(every operation has: ",
            id="login-field-in-the-shared-auth",
        ),
        pytest.param(
            lambda c: c["auth"].update(type="oauth"),
            "auth.clientId: is required for OAuth",
            id="oauth-without-client-id",
        ),
        pytest.param(
            lambda c: c["auth"].update(
                type="oauth",
                clientId="x",
                authUrl="https://auth.restcrm.example/authorize",
                tokenUrl="https://tokens.evil.example/t",
            ),
            "auth.tokenUrl: goes to host 'tokens.evil.example', which is neither the baseUrl's host nor in "
            "requestDefaults.allowedHosts",
            id="oauth-token-url-off-host",
        ),
        pytest.param(
            lambda c: c["requestDefaults"]["defaultHeaders"].update(Host="evil.example"),
            "requestDefaults.defaultHeaders.Host: may not be set by a config",
            id="host-header",
        ),
        pytest.param(
            lambda c: op(c, "createContact")["headers"].update({"X-Note": "a\r\nX-Injected: 1"}),
            "operations.createContact.headers.X-Note: may not hold a line break",
            id="header-injection",
        ),
        pytest.param(
            lambda c: op(c, "createContact")["headers"].update({"Bad Header": "x"}),
            "operations.createContact.headers.Bad Header: is not a valid header name",
            id="bad-header-name",
        ),
        pytest.param(
            lambda c: op(c, "createContact")["body"].update(name="{{newContactName}"),
            "operations.createContact.body.name: '{{newContactName}' has an unmatched '{{' or '}}'",
            id="unmatched-braces",
        ),
        pytest.param(
            lambda c: op(c, "createContact")["body"].update(name="{{ }}"),
            "operations.createContact.body.name: {{}} is not a dot path",
            id="empty-expression",
        ),
        pytest.param(
            lambda c: op(c, "createContact")["body"].update({"{{newContactName}}": "x"}),
            "operations.createContact.body.{{newContactName}}: keys are not templates",
            id="templated-key",
        ),
        pytest.param(
            lambda c: op(c, "getCallLog").update(url="/activities/../admin/{{thirdPartyLogId}}"),
            "operations.getCallLog.url: may not hold '.' or '..' segments",
            id="dot-segments",
        ),
        pytest.param(
            lambda c: op(c, "findContact")["query"].update(phone={"nested": "{{phoneNumber}}"}),
            "operations.findContact.query.phone: must be a value or a list of values",
            id="object-in-query",
        ),
    ],
)
def test_a_bad_config_is_refused_naming_the_place(mutate: Any, expected: str) -> None:
    errors = refused(mutate)

    assert any(error.startswith(expected) for error in errors), errors


def test_every_problem_is_reported_at_once() -> None:
    def break_many(config: dict[str, Any]) -> None:
        op(config, "findContact").update(method="FETCH")
        op(config, "createCallLog").update(url="https://evil.example/x")
        op(config, "getCallLog").update(url="/a/{{secretKey}}")
        config["meta"]["logFormat"] = "pdf"

    errors = refused(break_many)

    assert [error.split(":", 1)[0] for error in errors] == [
        "meta.logFormat",
        "operations.findContact.method",
        "operations.createCallLog.url",
        "operations.getCallLog.url",
    ]


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ([], "config: must be a JSON object"),
        ({"meta": {1, 2}}, "config: must be plain JSON"),
        ({"meta": float("nan")}, "config: must be plain JSON"),
    ],
)
def test_what_is_not_a_json_object_is_refused(config: Any, expected: str) -> None:
    assert config_errors(config)[0].startswith(expected)


def test_a_hostile_config_too_large_or_too_deep_is_refused_before_anything_else() -> None:
    deep: Any = "{{apiKey}}"
    for _ in range(40):
        deep = {"x": deep}
    config = sample()
    op(config, "createCallLog")["body"] = deep
    assert config_errors(config) == ["config: is nested more than 32 levels deep"]

    config = sample()
    op(config, "createCallLog")["body"]["padding"] = "x" * (300 * 1024)
    assert config_errors(config)[0].startswith("config: is ")


def test_a_hostile_config_gets_nothing_out() -> None:
    """One config that tries every way out: each is named."""
    config = sample()
    config["requestDefaults"]["allowedHosts"] = ["api.restcrm.example"]
    config["requestDefaults"]["defaultHeaders"]["Host"] = "collector.evil.example"
    op(config, "findContact").update(url="https://collector.evil.example/{{apiKey}}")
    op(config, "getCallLog").update(url="https://{{user.platformAdditionalInfo.tenantId}}.evil.example/x")
    op(config, "createContact")["query"] = {"k": "{{secretKey}}", "u": "{{user}}"}
    config["auth"]["credentialTemplate"] = "{{user.platformAdditionalInfo.tenantId}}"
    config["auth"]["headerName"] = "Host"

    places = {error.split(":", 1)[0] for error in config_errors(config)}

    assert places == {
        "requestDefaults.defaultHeaders.Host",
        "auth.headerName",
        "operations.findContact.url",
        "operations.getCallLog.url",
        "operations.createContact.query.k",
        "operations.createContact.query.u",
    }
