"""The admin's rules page: one page per scope, each rule a field beside the value in force,
saved through the services (history, cache), and the old lists kept read-only for auditors."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from connector.models import CrmUser
from rules.models import Account, PlaceholderNameTemplate, RuleSetting
from rules.parameters import RULE_PARAMETERS
from rules.selectors import rule_values_get
from rules.services import account_ensure, contact_type_choices
from tests.rules.conftest import ACCOUNT_ID

pytestmark = pytest.mark.django_db

SITE_PAGE = reverse("admin:rules_page")
NAME_PREVIEW = reverse("admin:rules_name_preview")


@pytest.fixture(autouse=True)
def _static_files_without_manifest(settings) -> None:
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


def account_page(account: Account) -> str:
    return reverse("admin:rules_page_account", args=[account.pk])


def name_field(contact_type: str) -> str:
    """The form field of a contact type's default placeholder name."""
    values = [value for value, _ in contact_type_choices()]
    return f"name_{values.index(contact_type)}"


def page_data(client: Client, url: str, **changes: Any) -> dict[str, Any]:
    """The page's form as the browser would post it (the initial values), with `changes`;
    a change of None drops the field (an unticked checkbox)."""
    form = client.get(url).context["form"]
    data: dict[str, Any] = {}
    for name in form.fields:
        value = form[name].value()
        if isinstance(value, bool):
            if value:
                data[name] = "on"
        elif isinstance(value, list):
            data[name] = value
        elif value is not None:
            data[name] = str(value)
    for name, value in changes.items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    return data


def in_force(client: Client, url: str, key: str) -> str:
    """The "In force now" cell of a rule, as text."""
    page = client.get(url).content.decode()
    row = re.search(rf'<tr id="rule-{key}".*?</tr>', page, re.S)
    assert row is not None
    cell = re.search(r'<td class="rule-in-force">(.*?)</td>', row.group(0), re.S)
    assert cell is not None
    return " ".join(re.sub(r"<[^>]+>", " ", cell.group(1)).split())


def test_a_fresh_install_shows_every_rule_with_its_default_in_force(admin_client: Client) -> None:
    response = admin_client.get(SITE_PAGE)

    assert response.status_code == 200
    page = response.content.decode()
    for parameter in RULE_PARAMETERS:
        assert parameter.label in page
        assert f'id="rule-{parameter.key}"' in page
    assert in_force(admin_client, SITE_PAGE, "unknownContactAction") == (
        "Leave it to the user (log nothing) from: default; users may change it"
    )
    assert in_force(admin_client, SITE_PAGE, "placeholderMinDurationSeconds").startswith("0 s from: default")


def test_the_fields_are_typed_choices_not_json(admin_client: Client) -> None:
    page = admin_client.get(SITE_PAGE).content.decode()

    assert '<select name="unknownContactAction"' in page
    assert (
        '<option value="createPlaceholder">Create a placeholder contact and log against it</option>' in page
    )
    assert 'type="checkbox" name="placeholderCallResults" value="voicemail"' in page
    assert 'type="number" name="placeholderMinDurationSeconds"' in page
    # Contact types from the connected CRMs' manifests, never free text.
    assert '<select name="placeholderContactType"' in page
    assert '<option value="Lead">Lead (builtin)</option>' in page


def test_setting_a_rule_saves_it_with_history_and_it_applies_at_once(
    admin_client: Client, crm_user: CrmUser
) -> None:
    assert rule_values_get(user=crm_user).unknown_contact_action == "prompt"  # now cached

    response = admin_client.post(
        SITE_PAGE,
        page_data(
            admin_client,
            SITE_PAGE,
            set_unknownContactAction="on",
            unknownContactAction="createPlaceholder",
            custom_unknownContactAction=None,
            _save="Save",
        ),
    )

    assert response.status_code == 302
    row = RuleSetting.objects.get()
    assert (row.account, row.key, row.value, row.customizable) == (
        None,
        "unknownContactAction",
        "createPlaceholder",
        False,
    )
    assert RuleSetting.history.count() == 1
    assert rule_values_get(user=crm_user).unknown_contact_action == "createPlaceholder"
    assert in_force(admin_client, SITE_PAGE, "unknownContactAction") == (
        "Create a placeholder contact and log against it from: site-wide; users may not change it"
    )


def test_saving_the_page_unchanged_writes_no_history(admin_client: Client) -> None:
    RuleSetting.objects.create(key="multipleMatchPolicy", value="alphabetical")

    response = admin_client.post(SITE_PAGE, page_data(admin_client, SITE_PAGE, _save="Save"))

    assert response.status_code == 302
    assert RuleSetting.history.count() == 1  # its creation only
    assert PlaceholderNameTemplate.history.count() == 0


def test_a_rule_left_to_inherit_removes_the_override(admin_client: Client, crm_user: CrmUser) -> None:
    RuleSetting.objects.create(key="multipleMatchPolicy", value="alphabetical")
    assert rule_values_get(user=crm_user).multiple_match_policy == "alphabetical"

    response = admin_client.post(
        SITE_PAGE, page_data(admin_client, SITE_PAGE, set_multipleMatchPolicy=None, _save="Save")
    )

    assert response.status_code == 302
    assert RuleSetting.objects.count() == 0
    assert list(RuleSetting.history.order_by("history_id").values_list("history_type", flat=True)) == [
        "+",
        "-",
    ]
    assert rule_values_get(user=crm_user).multiple_match_policy == "prompt"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("defaultPlaceholderName", "Caller {bogus}"),
        ("defaultPlaceholderName", ""),
        ("placeholderMinDurationSeconds", "86401"),
        ("placeholderMinDurationSeconds", "-1"),
        ("unknownContactAction", "maybe"),
        ("placeholderContactType", "Spaceship"),
    ],
)
def test_an_invalid_value_is_a_field_error_and_nothing_is_stored(
    admin_client: Client, key: str, value: str
) -> None:
    response = admin_client.post(
        SITE_PAGE, page_data(admin_client, SITE_PAGE, **{f"set_{key}": "on", key: value, "_save": "Save"})
    )

    assert response.status_code == 200
    assert key in response.context["form"].errors
    assert RuleSetting.objects.count() == 0
    assert RuleSetting.history.count() == 0


def test_an_empty_list_is_a_value_not_inherit(admin_client: Client, crm_user: CrmUser) -> None:
    response = admin_client.post(
        SITE_PAGE,
        page_data(
            admin_client,
            SITE_PAGE,
            set_placeholderMessageTypes="on",
            placeholderMessageTypes=None,
            _save="Save",
        ),
    )

    assert response.status_code == 302
    assert RuleSetting.objects.get().value == []
    assert rule_values_get(user=crm_user).placeholder_message_types == ()


def test_an_accounts_page_sets_the_accounts_rules_over_the_site(
    admin_client: Client, crm_user: CrmUser
) -> None:
    account = account_ensure(rc_account_id=ACCOUNT_ID)
    crm_user.rc_account_id = ACCOUNT_ID
    crm_user.save()
    RuleSetting.objects.create(key="placeholderMinDurationSeconds", value=10)
    url = account_page(account)
    assert in_force(admin_client, url, "placeholderMinDurationSeconds").startswith("10 s from: site-wide")

    response = admin_client.post(
        url,
        page_data(
            admin_client,
            url,
            set_placeholderMinDurationSeconds="on",
            placeholderMinDurationSeconds="45",
            custom_placeholderMinDurationSeconds="on",
            _save="Save",
        ),
    )

    assert response.status_code == 302
    row = RuleSetting.objects.get(account=account)
    assert (row.key, row.value, row.customizable) == ("placeholderMinDurationSeconds", 45, True)
    assert in_force(admin_client, url, "placeholderMinDurationSeconds") == (
        "45 s from: this account; users may change it"
    )
    assert in_force(admin_client, SITE_PAGE, "placeholderMinDurationSeconds").startswith(
        "10 s from: site-wide"
    )
    assert rule_values_get(user=crm_user).placeholder_min_duration_seconds == 45


# --- default placeholder names on the same page ----------------------------------------------


def test_a_default_name_per_contact_type_is_saved_and_removed_from_the_page(admin_client: Client) -> None:
    field = name_field("Lead")

    saved = admin_client.post(
        SITE_PAGE, page_data(admin_client, SITE_PAGE, **{field: "New lead {last4}", "_save": "Save"})
    )
    assert saved.status_code == 302
    name = PlaceholderNameTemplate.objects.get()
    assert (name.account, name.contact_type, name.template) == (None, "Lead", "New lead {last4}")

    cleared = admin_client.post(SITE_PAGE, page_data(admin_client, SITE_PAGE, **{field: "", "_save": "Save"}))
    assert cleared.status_code == 302
    assert PlaceholderNameTemplate.objects.count() == 0
    assert list(
        PlaceholderNameTemplate.history.values_list("history_type", flat=True).order_by("history_id")
    ) == [
        "+",
        "-",
    ]


@pytest.mark.parametrize("template", ["{x}", "Caller {last4", "{0}", "{last4!r}"])
def test_a_default_name_that_cannot_render_is_a_field_error(admin_client: Client, template: str) -> None:
    field = name_field("Lead")

    response = admin_client.post(
        SITE_PAGE, page_data(admin_client, SITE_PAGE, **{field: template, "_save": "Save"})
    )

    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert PlaceholderNameTemplate.objects.count() == 0


def test_the_name_preview_renders_for_the_sample_number(admin_client: Client) -> None:
    ok = admin_client.get(
        NAME_PREVIEW, {"template": "New {nationalNumber} {last4}", "number": "415 555 0123"}
    )
    bad_template = admin_client.get(NAME_PREVIEW, {"template": "Hi {nope}"})
    bad_number = admin_client.get(NAME_PREVIEW, {"template": "Hi", "number": "call me"})

    assert (ok.status_code, ok.json()) == (200, {"name": "New (415) 555-0123 0123"})
    assert bad_template.status_code == 400
    assert "unknown field {nope}" in bad_template.json()["error"]
    assert bad_number.status_code == 400
    assert bad_number.json()["error"].startswith("sample number:")


def test_without_javascript_preview_shows_the_typed_names(admin_client: Client) -> None:
    field = name_field("Lead")

    response = admin_client.post(
        SITE_PAGE,
        page_data(
            admin_client,
            SITE_PAGE,
            **{field: "Lead {last4}", "sample_number": "+442071838750", "_preview": "Preview"},
        ),
    )

    assert response.status_code == 200
    assert "Preview: <strong>Lead 8750</strong>" in response.content.decode()
    assert PlaceholderNameTemplate.objects.count() == 0  # a preview saves nothing


def test_the_name_in_force_per_contact_type_says_where_it_comes_from(admin_client: Client) -> None:
    account = account_ensure(rc_account_id=ACCOUNT_ID)
    RuleSetting.objects.create(key="defaultPlaceholderName", value="Site {last4}")
    PlaceholderNameTemplate.objects.create(contact_type="Lead", template="Site lead {last4}")
    PlaceholderNameTemplate.objects.create(account=account, contact_type="Contact", template="Acct {last4}")

    rows = {row["contact_type"]: row for row in admin_client.get(account_page(account)).context["name_rows"]}

    assert (rows["Lead"]["in_force"], rows["Lead"]["source"]) == ("Site lead {last4}", "site, contact type")
    assert (rows["Contact"]["in_force"], rows["Contact"]["source"]) == (
        "Acct {last4}",
        "account, contact type",
    )
    assert (rows["Person"]["in_force"], rows["Person"]["source"]) == ("Site {last4}", "site")


# --- who may do what, and the old lists ---------------------------------------------------


@pytest.fixture
def viewer_client(db) -> Client:
    """Staff who may view the rules but change nothing."""
    user = User.objects.create_user("vera", password="x", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="rules", codename__in=["view_rulesetting", "view_placeholdernametemplate"]
        )
    )
    client = Client()
    client.force_login(user)
    return client


def test_a_viewer_sees_the_page_and_previews_but_cannot_save(viewer_client: Client) -> None:
    page = viewer_client.get(SITE_PAGE)
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()

    data = page_data(viewer_client, SITE_PAGE, set_unknownContactAction="on")
    data["unknownContactAction"] = "createPlaceholder"
    assert viewer_client.post(SITE_PAGE, {**data, "_preview": "Preview"}).status_code == 200
    assert viewer_client.post(SITE_PAGE, {**data, "_save": "Save"}).status_code == 403
    assert RuleSetting.objects.count() == 0


def test_staff_without_rule_permissions_cannot_open_the_page(db) -> None:
    user = User.objects.create_user("stan", password="x", is_staff=True)
    client = Client()
    client.force_login(user)

    assert client.get(SITE_PAGE).status_code == 403
    assert client.get(NAME_PREVIEW, {"template": "x"}).status_code == 403


def test_rule_rows_are_read_only_in_the_old_list(admin_client: Client) -> None:
    row = RuleSetting.objects.create(key="unknownContactAction", value="createPlaceholder")
    change = reverse("admin:rules_rulesetting_change", args=[row.pk])

    page = admin_client.get(change).content.decode()
    refused = admin_client.post(change, {"key": "unknownContactAction", "value": '"prompt"'})
    deleted = admin_client.post(reverse("admin:rules_rulesetting_delete", args=[row.pk]), {"post": "yes"})

    assert 'name="_save"' not in page
    assert SITE_PAGE in page
    assert refused.status_code == 403
    assert deleted.status_code == 403
    row.refresh_from_db()
    assert row.value == "createPlaceholder"
    assert admin_client.get(reverse("admin:rules_rulesetting_history", args=[row.pk])).status_code == 200


def test_the_old_add_form_keeps_app_connect_settings_only(admin_client: Client) -> None:
    add = reverse("admin:rules_rulesetting_add")

    refused = admin_client.post(
        add, {"account": "", "key": "unknownContactAction", "value": '"createPlaceholder"'}
    )
    saved = admin_client.post(add, {"account": "", "key": "autoLogCall", "value": "true"})

    assert "key" in refused.context["adminform"].form.errors
    assert saved.status_code == 302
    assert list(RuleSetting.objects.values_list("key", "value")) == [("autoLogCall", True)]


def test_default_names_are_set_on_the_page_only(admin_client: Client) -> None:
    name = PlaceholderNameTemplate.objects.create(contact_type="Lead", template="Lead {last4}")

    assert admin_client.get(reverse("admin:rules_placeholdernametemplate_add")).status_code == 403
    changelist = admin_client.get(reverse("admin:rules_placeholdernametemplate_changelist")).content.decode()
    assert SITE_PAGE in changelist
    detail = admin_client.get(reverse("admin:rules_placeholdernametemplate_change", args=[name.pk]))
    assert 'name="_save"' not in detail.content.decode()


def test_the_index_the_rule_list_and_the_account_link_the_pages(admin_client: Client) -> None:
    account = account_ensure(rc_account_id=ACCOUNT_ID)

    index = admin_client.get(reverse("admin:index")).content.decode()
    rule_list = admin_client.get(reverse("admin:rules_rulesetting_changelist")).content.decode()
    account_detail = admin_client.get(
        reverse("admin:rules_account_change", args=[account.pk])
    ).content.decode()

    assert SITE_PAGE in index
    assert SITE_PAGE in rule_list
    assert account_page(account) in account_detail
    assert account_page(account) in admin_client.get(SITE_PAGE).content.decode()
