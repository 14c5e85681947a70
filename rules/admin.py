"""Admin for the rules: accounts, rule settings, default placeholder names, placeholder registry.

Edits go through `rules.services` (which check values and drop the rules cache); each
change is kept in the row's history (django-simple-history).
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from simple_history.admin import SimpleHistoryAdmin

from rules.models import Account, PlaceholderContact, PlaceholderNameTemplate, RuleSetting
from rules.parameters import PARAMETERS, RULE_KEYS
from rules.services import (
    account_save,
    placeholder_name_errors,
    placeholder_name_save,
    rule_row_delete,
    rule_setting_clean,
    rule_setting_save,
)


def _setting_choices() -> list[tuple[str, Any]]:
    rules = [(key, f"{PARAMETERS[key].label} ({key})") for key in RULE_KEYS]
    others = sorted(
        ((key, f"{p.label} ({key})") for key, p in PARAMETERS.items() if not p.is_rule), key=lambda c: c[1]
    )
    return [("Auto-logging rules", rules), ("App Connect settings", others)]


class RuleSettingForm(forms.ModelForm):
    key = forms.ChoiceField(label="Setting", choices=_setting_choices)

    class Meta:
        model = RuleSetting
        fields = ("account", "key", "value", "customizable", "is_removed")
        help_texts = {
            "value": 'JSON: a rule\'s value in quotes, e.g. "createPlaceholder" or "Unknown caller {last4}"; '
            "true/false for switches.",
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        key, value = data.get("key"), data.get("value")
        if key and "value" in data:
            try:
                rule_setting_clean(key=key, value=value)
            except ValueError as exc:
                self.add_error("value", f"{key}: {exc}")
        return data


@admin.register(RuleSetting)
class RuleSettingAdmin(SimpleHistoryAdmin):
    form = RuleSettingForm
    list_display = ("key", "scope", "value_display", "customizable", "is_removed", "updated_at")
    list_filter = ("customizable", "is_removed", ("account", admin.EmptyFieldListFilter))
    list_select_related = ("account",)
    search_fields = ("key", "account__rc_account_id", "account__name")
    autocomplete_fields = ("account",)

    @admin.display(description="applies to", ordering="account")
    def scope(self, obj: RuleSetting) -> str:
        return str(obj.account) if obj.account_id else "Site-wide default"

    @admin.display(description="value")
    def value_display(self, obj: RuleSetting) -> str:
        return json.dumps(obj.value)

    def save_model(self, request: HttpRequest, obj: RuleSetting, form: Any, change: bool) -> None:
        rule_setting_save(setting=obj)

    def delete_model(self, request: HttpRequest, obj: RuleSetting) -> None:
        rule_row_delete(row=obj)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for row in queryset:
            rule_row_delete(row=row)


class PlaceholderNameForm(forms.ModelForm):
    class Meta:
        model = PlaceholderNameTemplate
        fields = ("account", "contact_type", "template")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        errors = placeholder_name_errors(
            contact_type=data.get("contact_type") or "", template=data.get("template") or ""
        )
        for field_name, message in errors.items():
            self.add_error(field_name, message)
        return data


@admin.register(PlaceholderNameTemplate)
class PlaceholderNameTemplateAdmin(SimpleHistoryAdmin):
    form = PlaceholderNameForm
    list_display = ("contact_type", "template", "scope", "updated_at")
    list_select_related = ("account",)
    search_fields = ("template", "contact_type", "account__rc_account_id")
    autocomplete_fields = ("account",)

    @admin.display(description="applies to", ordering="account")
    def scope(self, obj: PlaceholderNameTemplate) -> str:
        return str(obj.account) if obj.account_id else "Site-wide default"

    def save_model(self, request: HttpRequest, obj: PlaceholderNameTemplate, form: Any, change: bool) -> None:
        placeholder_name_save(name=obj)

    def delete_model(self, request: HttpRequest, obj: PlaceholderNameTemplate) -> None:
        rule_row_delete(row=obj)


@admin.register(Account)
class AccountAdmin(SimpleHistoryAdmin):
    list_display = ("rc_account_id", "name", "created_at")
    search_fields = ("rc_account_id", "name", "account_key")
    readonly_fields = ("account_key", "created_at", "updated_at")
    fields = ("rc_account_id", "name", "account_key", "created_at", "updated_at")

    def save_model(self, request: HttpRequest, obj: Account, form: Any, change: bool) -> None:
        account_save(account=obj)


@admin.register(PlaceholderContact)
class PlaceholderContactAdmin(admin.ModelAdmin):
    """The placeholder registry, read-only: rows are history."""

    list_display = (
        "phone_number",
        "contact_name",
        "contact_type",
        "decided_by",
        "status",
        "platform",
        "created_at",
    )
    list_filter = ("decided_by", "status", "platform", "created_at")
    list_select_related = ("account", "created_by")
    search_fields = ("phone_number", "contact_id", "contact_name")
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
