"""GET /contact, POST /contact and GET /custom/contact/search (appconnect-api.md §2.8-2.10)."""

from __future__ import annotations

from typing import Any

import pytest

from connector.models import BuiltinContact, BuiltinContactPhone, CrmUser
from tests.conftest import ApiClient
from tests.factories import BuiltinContactFactory

NEW_CONTACT = {"id": "createNewContact", "name": "Create new contact...", "isNewContact": True}


def not_found(number: str) -> dict[str, Any]:
    return {
        "message": "Contact not found",
        "messageType": "warning",
        "ttl": 5000,
        "details": [
            {
                "title": "Details",
                "items": [
                    {
                        "id": "1",
                        "type": "text",
                        "text": f"A contact with the phone number {number} could not be found "
                        "in your builtin account.",
                    }
                ],
            }
        ],
    }


def real(contacts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [contact for contact in contacts if not contact.get("isNewContact")]


def assert_bad_input(response, field: str) -> dict[str, Any]:
    """A 400 JSON naming `field`, with a returnMessage the client can show."""
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["successful"] is False
    assert field in body["errors"], body["errors"]
    assert body["returnMessage"]["messageType"] == "warning"
    assert field in body["returnMessage"]["message"]
    return body


# --- GET /contact ----------------------------------------------------------------------


def test_lookup_of_an_unknown_number_offers_creation_and_warns(api: ApiClient) -> None:
    BuiltinContactFactory(phone_numbers=["+14155550199"])

    response = api.get("/contact", {"phoneNumber": "+14155550100"})

    assert response.status_code == 200
    assert response.json() == {
        "successful": True,
        "returnMessage": not_found("+14155550100"),
        "contact": [NEW_CONTACT],
    }


def test_lookup_never_creates_anything(api: ApiClient) -> None:
    api.get("/contact", {"phoneNumber": "+14155550100"})

    assert BuiltinContact.objects.count() == 0


def test_lookup_of_a_known_number_returns_the_contact_then_the_creation_option(
    api: ApiClient, crm_user: CrmUser
) -> None:
    contact = BuiltinContactFactory(name="Jane Caller", contact_type="Lead", phone_numbers=["+14155550100"])

    response = api.get("/contact", {"phoneNumber": "+14155550100"})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"successful", "contact"}  # no returnMessage from the CRM, none added
    assert body["successful"] is True
    first, option = body["contact"]
    assert option == NEW_CONTACT
    assert first == {
        "id": str(contact.pk),
        "name": "Jane Caller",
        "type": "Lead",
        "phone": "+14155550100",
        "createdDate": contact.created_at.isoformat().replace("+00:00", "Z"),
        "mostRecentActivityDate": None,
        "additionalInfo": None,
    }


def test_lookup_returns_every_contact_with_the_number(api: ApiClient) -> None:
    first = BuiltinContactFactory(name="Jane", phone_numbers=["+14155550100"])
    second = BuiltinContactFactory(name="John", phone_numbers=["+16505550111", "+14155550100"])

    body = api.get("/contact", {"phoneNumber": "+14155550100"}).json()

    assert [c["id"] for c in real(body["contact"])] == [str(first.pk), str(second.pk)]
    assert "returnMessage" not in body


@pytest.mark.parametrize(
    ("saved_as", "looked_up_as"),
    [
        ("(415) 555-0100", "+14155550100"),
        ("+14155550100", "(415) 555-0100"),
        ("415-555-0100", "+1 415 555 0100"),
        ("+1 (415) 555-0100", "4155550100"),
        ("1 415 555 0100", "415.555.0100"),
    ],
)
def test_a_contact_is_found_by_any_format_of_its_number(
    api: ApiClient, saved_as: str, looked_up_as: str
) -> None:
    created = api.post("/contact", {"phoneNumber": saved_as, "newContactName": "Jane"}).json()["contact"]

    body = api.get("/contact", {"phoneNumber": looked_up_as}).json()

    assert [c["id"] for c in real(body["contact"])] == [created["id"]]
    assert body["contact"][0]["phone"] == "+14155550100"


def test_an_encoded_plus_and_a_plus_that_arrived_as_a_space_find_the_same_contact(api: ApiClient) -> None:
    contact = BuiltinContactFactory(phone_numbers=["+14155550100"])

    encoded = api.get("/contact?phoneNumber=%2B14155550100").json()
    # An unencoded "+" in a query string decodes to a space; the peer repairs it.
    unencoded = api.get("/contact?phoneNumber=+14155550100").json()
    spaced = api.get("/contact?phoneNumber=%2014155550100").json()

    for body in (encoded, unencoded, spaced):
        assert [c["id"] for c in real(body["contact"])] == [str(contact.pk)]


def test_an_unknown_number_in_national_format_is_reported_in_e164(api: ApiClient) -> None:
    body = api.get("/contact", {"phoneNumber": "(415) 555-0100"}).json()

    assert body["returnMessage"] == not_found("+14155550100")


@pytest.mark.parametrize("query", [{}, {"phoneNumber": ""}, {"phoneNumber": "abc"}, {"phoneNumber": "12"}])
def test_lookup_without_a_usable_number_is_a_400_naming_phone_number(
    api: ApiClient, query: dict[str, str]
) -> None:
    assert_bad_input(api.get("/contact", query), "phoneNumber")


def test_lookup_of_an_extension_number(api: ApiClient) -> None:
    colleague = BuiltinContactFactory(name="Front desk", phone_numbers=["101"])

    found = api.get("/contact", {"phoneNumber": "101", "isExtension": "true"})
    missing = api.get("/contact", {"phoneNumber": "102", "isExtension": "true"})

    assert found.status_code == 200
    assert [c["id"] for c in real(found.json()["contact"])] == [str(colleague.pk)]
    assert missing.json() == {"successful": True, "returnMessage": not_found("102"), "contact": [NEW_CONTACT]}


def test_an_extension_lookup_must_be_digits(api: ApiClient) -> None:
    assert_bad_input(api.get("/contact", {"phoneNumber": "ext-101", "isExtension": "true"}), "phoneNumber")


def test_is_extension_false_reads_the_number_as_a_phone_number(api: ApiClient) -> None:
    assert_bad_input(api.get("/contact", {"phoneNumber": "101", "isExtension": "false"}), "phoneNumber")


# --- POST /contact ---------------------------------------------------------------------


def test_create_contact_answers_the_new_contact(api: ApiClient, crm_user: CrmUser) -> None:
    response = api.post(
        "/contact",
        {
            "phoneNumber": "(415) 555-0100",
            "newContactName": "Jane Caller",
            "newContactType": "Lead",
            "additionalSubmission": {"source": "call"},
        },
    )

    assert response.status_code == 200
    contact = BuiltinContact.objects.get()
    assert response.json() == {
        "successful": True,
        "returnMessage": {"message": "Contact created.", "messageType": "success", "ttl": 2000},
        "contact": {"id": str(contact.pk), "name": "Jane Caller", "type": "Lead"},
    }
    assert (contact.name, contact.contact_type, contact.created_by.name) == ("Jane Caller", "Lead", "alice")
    # Stored normalised to E.164.
    assert list(contact.phone_numbers.values_list("phone_number", flat=True)) == ["+14155550100"]


def test_create_contact_defaults_to_the_first_manifest_contact_type(api: ApiClient) -> None:
    response = api.post("/contact", {"phoneNumber": "+14155550100", "newContactName": "Jane"})

    assert response.json()["contact"]["type"] == "Contact"
    assert BuiltinContact.objects.get().contact_type == "Contact"


def test_create_contact_does_not_hide_the_contact_from_the_next_lookup(api: ApiClient) -> None:
    created = api.post("/contact", {"phoneNumber": "+14155550100", "newContactName": "Jane"}).json()

    body = api.get("/contact", {"phoneNumber": "+14155550100"}).json()

    assert body["contact"][0]["id"] == created["contact"]["id"]
    assert body["contact"][0]["name"] == "Jane"
    assert "returnMessage" not in body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {"phoneNumber": "+14155550100", "newContactName": "Jane", "newContactType": "Vendor"},
            "newContactType",
        ),
        ({"phoneNumber": "+14155550100", "newContactName": "Jane", "newContactType": 3}, "newContactType"),
        ({"phoneNumber": "+14155550100"}, "newContactName"),
        ({"phoneNumber": "+14155550100", "newContactName": ""}, "newContactName"),
        ({"phoneNumber": "+14155550100", "newContactName": 42}, "newContactName"),
        ({"newContactName": "Jane"}, "phoneNumber"),
        ({"phoneNumber": "not a number", "newContactName": "Jane"}, "phoneNumber"),
        (
            {"phoneNumber": "+14155550100", "newContactName": "Jane", "additionalSubmission": []},
            "additionalSubmission",
        ),
    ],
)
def test_create_contact_with_bad_input_is_a_400_and_writes_nothing(
    api: ApiClient, body: dict[str, Any], field: str
) -> None:
    response = api.post("/contact", body)

    assert_bad_input(response, field)
    assert BuiltinContact.objects.count() == 0
    assert BuiltinContactPhone.objects.count() == 0


def test_create_contact_with_malformed_json_is_a_400(api: ApiClient) -> None:
    response = api.post("/contact", raw='{"phoneNumber": ')

    assert_bad_input(response, "body")
    assert BuiltinContact.objects.count() == 0


def test_create_contact_with_a_json_array_is_a_400(api: ApiClient) -> None:
    assert_bad_input(api.post("/contact", raw="[]"), "body")
    assert BuiltinContact.objects.count() == 0


# --- GET /custom/contact/search --------------------------------------------------------


def test_search_by_name_finds_matching_contacts(api: ApiClient) -> None:
    jane = BuiltinContactFactory(name="Jane Caller", phone_numbers=["+14155550100"])
    BuiltinContactFactory(name="Bob Builder")

    response = api.get("/custom/contact/search", {"name": "jane"})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"successful", "contact"}
    assert body["successful"] is True
    assert [(c["id"], c["name"]) for c in body["contact"]] == [(str(jane.pk), "Jane Caller")]


def test_search_without_a_match_warns_with_the_peer_s_trailing_space(api: ApiClient) -> None:
    BuiltinContactFactory(name="Bob Builder")

    response = api.get("/custom/contact/search", {"name": "Jane"})

    assert response.status_code == 200
    assert response.json() == {
        "successful": True,
        "returnMessage": {
            "message": "No contact found with name Jane ",
            "messageType": "warning",
            "ttl": 5000,
        },
        "contact": [],
    }


def test_search_without_a_name_is_a_400(api: ApiClient) -> None:
    assert_bad_input(api.get("/custom/contact/search"), "name")
