"""The `Auditors` group: view-only access to the log history and the rules' change history."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse

from logs.models import CallLog
from rules.models import Account, PlaceholderNameTemplate, RuleSetting
from rules.services import rule_setting_save
from tests.logs.conftest import History

VIEW_PERMISSIONS = {
    "logs.view_calllog",
    "logs.view_messagelog",
    "logs.view_logevent",
    "rules.view_placeholdercontact",
    "rules.view_rulesetting",
    "rules.view_historicalrulesetting",
    "rules.view_placeholdernametemplate",
    "rules.view_historicalplaceholdernametemplate",
    "rules.view_account",
    "rules.view_historicalaccount",
}


@pytest.fixture
def rule_rows(db) -> tuple[RuleSetting, PlaceholderNameTemplate, Account]:
    setting = rule_setting_save(setting=RuleSetting(key="unknownContactAction", value="createPlaceholder"))
    name = PlaceholderNameTemplate.objects.create(contact_type="Contact", template="Caller {last4}")
    account = Account.objects.create(rc_account_id="99887766", account_key="k" * 64, name="Other Inc")
    return setting, name, account


def test_the_migration_creates_the_group_with_view_permissions_only(db) -> None:
    group = Group.objects.get(name="Auditors")
    granted = {
        f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")
    }
    assert granted == VIEW_PERMISSIONS


def test_an_auditor_has_exactly_the_view_permissions(auditor: User) -> None:
    assert auditor.get_all_permissions() == VIEW_PERMISSIONS


@pytest.mark.parametrize(
    "name",
    [
        "admin:logs_calllog_changelist",
        "admin:logs_messagelog_changelist",
        "admin:logs_logevent_changelist",
        "admin:rules_placeholdercontact_changelist",
        "admin:rules_rulesetting_changelist",
        "admin:rules_placeholdernametemplate_changelist",
        "admin:rules_account_changelist",
        "admin:logs_dashboard",
        "admin:index",
    ],
)
def test_an_auditor_views_every_list(
    auditor_client: Client, history: History, rule_rows: object, name: str
) -> None:
    assert auditor_client.get(reverse(name)).status_code == 200


def test_an_auditor_views_details_read_only(
    auditor_client: Client, history: History, rule_rows: tuple[RuleSetting, PlaceholderNameTemplate, Account]
) -> None:
    setting, name, account = rule_rows
    urls = [
        reverse("admin:logs_calllog_change", args=[history.placeholder_call.pk]),
        reverse("admin:logs_messagelog_change", args=[history.logged_message.pk]),
        reverse("admin:logs_logevent_change", args=[history.placeholder_call.events.first().pk]),
        reverse("admin:rules_placeholdercontact_change", args=[history.placeholder_by_rule.pk]),
        reverse("admin:rules_rulesetting_change", args=[setting.pk]),
        reverse("admin:rules_placeholdernametemplate_change", args=[name.pk]),
        reverse("admin:rules_account_change", args=[account.pk]),
    ]
    for url in urls:
        response = auditor_client.get(url)
        assert response.status_code == 200, url
        assert b'name="_save"' not in response.content, url


def test_an_auditor_views_the_rules_change_history(
    auditor_client: Client, rule_rows: tuple[RuleSetting, PlaceholderNameTemplate, Account]
) -> None:
    setting, name, account = rule_rows
    for model, row in (("rulesetting", setting), ("placeholdernametemplate", name), ("account", account)):
        response = auditor_client.get(reverse(f"admin:rules_{model}_history", args=[row.pk]))
        assert response.status_code == 200, model
        assert b"Revert" not in response.content


def test_an_auditor_exports(auditor_client: Client, history: History) -> None:
    for model in ("logs_calllog", "logs_messagelog", "logs_logevent", "rules_placeholdercontact"):
        response = auditor_client.get(reverse(f"admin:{model}_export"))
        assert response.status_code == 200, model
        assert response["Content-Type"].startswith("text/csv")


@pytest.mark.parametrize(
    ("name", "row"),
    [
        ("logs_calllog", "placeholder_call"),
        ("logs_messagelog", "logged_message"),
        ("rules_placeholdercontact", "placeholder_by_rule"),
    ],
)
def test_an_auditor_cannot_add_change_or_delete_history(
    auditor_client: Client, history: History, name: str, row: str
) -> None:
    pk = getattr(history, row).pk
    assert auditor_client.get(reverse(f"admin:{name}_add")).status_code == 403
    assert auditor_client.post(reverse(f"admin:{name}_add"), {}).status_code == 403
    assert (
        auditor_client.post(reverse(f"admin:{name}_change", args=[pk]), {"status": "skipped"}).status_code
        == 403
    )
    assert auditor_client.get(reverse(f"admin:{name}_delete", args=[pk])).status_code == 403
    assert auditor_client.post(reverse(f"admin:{name}_delete", args=[pk]), {"post": "yes"}).status_code == 403


def test_an_auditor_cannot_change_the_event_trail(auditor_client: Client, history: History) -> None:
    event = history.placeholder_call.events.first()
    assert auditor_client.post(reverse("admin:logs_logevent_change", args=[event.pk]), {}).status_code == 403
    assert (
        auditor_client.post(
            reverse("admin:logs_logevent_delete", args=[event.pk]), {"post": "yes"}
        ).status_code
        == 403
    )


def test_an_auditor_cannot_change_rules(
    auditor_client: Client, rule_rows: tuple[RuleSetting, PlaceholderNameTemplate, Account]
) -> None:
    setting, name, account = rule_rows
    assert auditor_client.get(reverse("admin:rules_rulesetting_add")).status_code == 403
    response = auditor_client.post(
        reverse("admin:rules_rulesetting_change", args=[setting.pk]),
        {"key": "unknownContactAction", "value": '"prompt"', "customizable": "on"},
    )
    assert response.status_code == 403
    for model, row in (("rulesetting", setting), ("placeholdernametemplate", name), ("account", account)):
        assert (
            auditor_client.post(
                reverse(f"admin:rules_{model}_delete", args=[row.pk]), {"post": "yes"}
            ).status_code
            == 403
        )
    setting.refresh_from_db()
    assert setting.value == "createPlaceholder"


def test_an_auditor_cannot_retry(auditor_client: Client, history: History) -> None:
    page = auditor_client.get(reverse("admin:logs_calllog_changelist")).content.decode()
    assert "retry_selected" not in page

    response = auditor_client.post(
        reverse("admin:logs_calllog_changelist"),
        {"action": "retry_selected", "_selected_action": [history.failed_call.pk], "index": 0},
    )

    assert response.status_code in (200, 302)
    failed = CallLog.objects.get(pk=history.failed_call.pk)
    assert (failed.status, failed.attempts) == ("failed", 2)
    assert not failed.events.filter(kind="retried").exists()


def test_staff_without_log_permissions_sees_neither_logs_nor_dashboard(db) -> None:
    staff = User.objects.create_user("stan", password="x", is_staff=True)
    client = Client()
    client.force_login(staff)
    assert client.get(reverse("admin:logs_dashboard")).status_code == 403
    assert client.get(reverse("admin:logs_calllog_changelist")).status_code == 403
    assert b"Log history dashboard" not in client.get(reverse("admin:index")).content


def test_the_admin_index_links_the_dashboard(auditor_client: Client) -> None:
    page = auditor_client.get(reverse("admin:index")).content.decode()
    assert reverse("admin:logs_dashboard") in page


def test_an_auditor_cannot_revert_a_rule_from_its_history(
    auditor_client: Client, rule_rows: tuple[RuleSetting, PlaceholderNameTemplate, Account]
) -> None:
    setting = rule_rows[0]
    version = setting.history.latest()
    url = reverse("admin:rules_rulesetting_simple_history", args=[setting.pk, version.history_id])

    response = auditor_client.post(url, {"key": "unknownContactAction", "value": '"prompt"'})

    setting.refresh_from_db()
    assert setting.value == "createPlaceholder"
    assert response.status_code == 403
