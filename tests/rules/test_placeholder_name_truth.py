"""One default placeholder name: what `GET /user/settings` reports, what the admin's rules
page shows in force, and what a placeholder made by the automatic flow is called agree,
whichever level set it (site, account, contact type at either)."""

from __future__ import annotations

import pytest
from django.test import Client

from connector.crm.registry import crm_registry
from connector.models import BuiltinContact, CrmUser
from rules.models import Account
from rules.parameters import template_render
from rules.services import account_ensure
from tests.conftest import ApiClient
from tests.rules.conftest import ACCOUNT_ID
from tests.rules.test_automatic_flow import UNKNOWN, auto_body
from tests.rules.test_rules_page import SITE_PAGE, account_page, name_field, page_data

pytestmark = pytest.mark.django_db

# The rules every case sets site-wide on the page: a placeholder for an unknown number,
# always named by the default name (never the Caller ID).
AUTOMATIC = {
    "set_unknownContactAction": "on",
    "unknownContactAction": "createPlaceholder",
    "set_placeholderNameSource": "on",
    "placeholderNameSource": "defaultOnly",
}


@pytest.fixture
def account(crm_user: CrmUser) -> Account:
    """The RingCentral account `crm_user` is linked to."""
    account = account_ensure(rc_account_id=ACCOUNT_ID)
    crm_user.rc_account_id = ACCOUNT_ID
    crm_user.save()
    return account


def save_page(client: Client, url: str, **changes: str) -> None:
    response = client.post(url, page_data(client, url, **changes, _save="Save"))
    assert response.status_code == 302, response.context["form"].errors if response.context else ""


@pytest.mark.parametrize(
    ("level", "template"),
    [
        ("built-in", "Unknown caller"),
        ("site", "Site caller {last4}"),
        ("account", "Acct caller {last4}"),
        ("site, contact type", "New caller {last4}"),
        ("account, contact type", "Acct contact {nationalNumber}"),
    ],
)
def test_api_admin_page_and_automatic_flow_agree(
    admin_client: Client, api: ApiClient, crm_user: CrmUser, account: Account, level: str, template: str
) -> None:
    contact_type = crm_registry.get(crm_user.platform).contact_type_values()[0]
    # A lower level set too, so the case shows the more specific one winning.
    save_page(admin_client, SITE_PAGE, **AUTOMATIC)
    if level == "site":
        save_page(admin_client, SITE_PAGE, set_defaultPlaceholderName="on", defaultPlaceholderName=template)
    elif level == "account":
        save_page(
            admin_client, SITE_PAGE, set_defaultPlaceholderName="on", defaultPlaceholderName="Site {last4}"
        )
        save_page(
            admin_client,
            account_page(account),
            set_defaultPlaceholderName="on",
            defaultPlaceholderName=template,
        )
    elif level == "site, contact type":
        save_page(
            admin_client, SITE_PAGE, set_defaultPlaceholderName="on", defaultPlaceholderName="Site {last4}"
        )
        save_page(admin_client, SITE_PAGE, **{name_field(contact_type): template})
    elif level == "account, contact type":
        save_page(admin_client, SITE_PAGE, **{name_field(contact_type): "Site lead {last4}"})
        save_page(
            admin_client,
            account_page(account),
            set_defaultPlaceholderName="on",
            defaultPlaceholderName="A {last4}",
        )
        save_page(admin_client, account_page(account), **{name_field(contact_type): template})

    reported = api.get("/user/settings").json()["defaultPlaceholderName"]["value"]
    rows = admin_client.get(account_page(account)).context["name_rows"]
    shown = next(row for row in rows if row["contact_type"] == contact_type)
    assert api.post("/callLog", auto_body("s-1", caller_name="Jane Doe")).json()["successful"] is True
    made = BuiltinContact.objects.get()

    assert reported == template
    assert (shown["in_force"], shown["source"]) == (template, level)
    assert made.contact_type == contact_type
    assert made.name == template_render(template, phone_number=UNKNOWN)


def test_the_api_reports_the_name_of_the_contact_type_placeholders_get(
    admin_client: Client, api: ApiClient, crm_user: CrmUser
) -> None:
    """The placeholder type rule picks which per-type name is in force."""
    save_page(
        admin_client,
        SITE_PAGE,
        **AUTOMATIC,
        set_placeholderContactType="on",
        placeholderContactType="Lead",
        **{name_field("Lead"): "New lead {last4}", name_field("Contact"): "New contact {last4}"},
    )

    reported = api.get("/user/settings").json()["defaultPlaceholderName"]["value"]
    api.post("/callLog", auto_body("s-1"))

    assert reported == "New lead {last4}"
    made = BuiltinContact.objects.get()
    assert (made.contact_type, made.name) == ("Lead", "New lead 0199")


def test_a_users_own_name_where_allowed_is_reported_and_applied(
    admin_client: Client, api: ApiClient, crm_user: CrmUser
) -> None:
    save_page(
        admin_client,
        SITE_PAGE,
        **AUTOMATIC,
        set_defaultPlaceholderName="on",
        defaultPlaceholderName="Site {last4}",
        custom_defaultPlaceholderName="on",
        **{name_field("Contact"): "New contact {last4}"},
    )
    api.post("/user/settings", {"userSettings": {"defaultPlaceholderName": {"value": "Mine {last4}"}}})

    reported = api.get("/user/settings").json()["defaultPlaceholderName"]["value"]
    api.post("/callLog", auto_body("s-1"))

    assert reported == "Mine {last4}"
    assert BuiltinContact.objects.get().name == "Mine 0199"
