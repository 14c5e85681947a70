"""The App Connect client's whole flow against the built-in CRM, end to end through HTTP."""

from __future__ import annotations

from tests.conftest import ApiClient, call_body


def test_unknown_caller_flow_logs_against_the_new_contact(api: ApiClient) -> None:
    lookup = api.get("/contact", {"phoneNumber": "+14155550100"})
    assert lookup.status_code == 200
    body = lookup.json()
    assert body["successful"] is True
    assert body["contact"] == [
        {"id": "createNewContact", "name": "Create new contact...", "isNewContact": True}
    ]
    assert body["returnMessage"]["message"] == "Contact not found"

    created = api.post(
        "/contact", {"phoneNumber": "(415) 555-0100", "newContactName": "Jane", "newContactType": "Lead"}
    )
    assert created.status_code == 200
    contact = created.json()["contact"]
    assert contact["name"] == "Jane" and contact["type"] == "Lead"

    # Saved as (415) 555-0100, found by its E.164 form.
    found = api.get("/contact", {"phoneNumber": "+14155550100"}).json()
    assert [c["id"] for c in found["contact"] if not c.get("isNewContact")] == [contact["id"]]

    logged = api.post("/callLog", call_body(contact_id=contact["id"]))
    assert logged.status_code == 200
    assert logged.json()["successful"] is True
    log_id = logged.json()["logId"]

    state = api.get("/callLog", {"sessionIds": "session-1,session-2"}).json()
    assert state == {
        "successful": True,
        "logs": [
            {"sessionId": "session-1", "matched": True, "logId": log_id},
            {"sessionId": "session-2", "matched": False},
        ],
    }
