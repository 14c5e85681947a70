"""Admin for connected CRM users and the built-in CRM.

Credentials never reach a form, a list or a page: the CRM user admin is read-only and
names only non-secret fields; built-in API keys show their prefix alone.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from connector.conf import connector_settings
from connector.models import (
    BuiltinActivity,
    BuiltinApiKey,
    BuiltinContact,
    BuiltinContactPhone,
    BuiltinCrmUser,
    CrmUser,
)
from connector.services import builtin_api_key_revoke
from connector.utils import InvalidPhoneNumber, phone_number_normalize


class ReadOnlyAdmin(admin.ModelAdmin):
    """Viewing only: no add, change or delete (the history screens of every app use it)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class PlatformListFilter(admin.SimpleListFilter):
    """The configured CRM platforms (no query: read from settings)."""

    title = "platform"
    parameter_name = "platform"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(name, name) for name in connector_settings.PLATFORMS]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(platform=self.value()) if self.value() else queryset


@admin.register(CrmUser)
class CrmUserAdmin(ReadOnlyAdmin):
    # Only these fields exist on the page: the encrypted credentials are never rendered.
    fields = (
        "id",
        "platform",
        "name",
        "hostname",
        "rc_account_id",
        "timezone_name",
        "timezone_offset",
        "connected",
        "user_settings",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields
    list_display = ("id", "name", "platform", "rc_account_id", "connected", "updated_at")
    list_filter = ("platform",)
    search_fields = ("id", "name", "rc_account_id")

    def get_queryset(self, request: HttpRequest) -> QuerySet[CrmUser]:
        return super().get_queryset(request).defer("refresh_token", "platform_additional_info_json")

    @admin.display(boolean=True, description="connected")
    def connected(self, obj: CrmUser) -> bool:
        return obj.is_connected


class ApiKeyInline(admin.TabularInline):
    model = BuiltinApiKey
    fields = ("prefix", "created_at", "revoked_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(BuiltinCrmUser)
class BuiltinCrmUserAdmin(admin.ModelAdmin):
    list_display = ("name", "created_at")
    search_fields = ("name",)
    inlines = (ApiKeyInline,)


@admin.register(BuiltinApiKey)
class BuiltinApiKeyAdmin(ReadOnlyAdmin):
    list_display = ("prefix", "user", "created_at", "revoked_at")
    list_filter = ("revoked_at",)
    list_select_related = ("user",)
    fields = ("prefix", "user", "created_at", "revoked_at")
    readonly_fields = fields
    actions = ("revoke",)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Needed for the revoke action; the form itself has no editable field.
        return request.user.has_perm("connector.change_builtinapikey")

    @admin.action(description="Revoke the selected keys (and disconnect their sessions)")
    def revoke(self, request: HttpRequest, queryset: QuerySet[BuiltinApiKey]) -> None:
        for key in queryset:
            builtin_api_key_revoke(api_key=key)
        self.message_user(request, f"Revoked {queryset.count()} key(s).", messages.SUCCESS)


class PhoneForm(forms.ModelForm):
    class Meta:
        model = BuiltinContactPhone
        fields = ("phone_number",)

    def clean_phone_number(self) -> str:
        # Numbers typed in any format are stored in E.164, so every lookup finds them.
        try:
            return phone_number_normalize(self.cleaned_data["phone_number"])
        except InvalidPhoneNumber as exc:
            raise forms.ValidationError(str(exc)) from exc


class PhoneInline(admin.TabularInline):
    model = BuiltinContactPhone
    form = PhoneForm
    extra = 1


@admin.register(BuiltinContact)
class BuiltinContactAdmin(admin.ModelAdmin):
    list_display = ("name", "contact_type", "created_by", "created_at", "updated_at")
    list_filter = ("contact_type", "created_at")
    list_select_related = ("created_by",)
    search_fields = ("name", "phone_numbers__phone_number", "=id")
    inlines = (PhoneInline,)


@admin.register(BuiltinActivity)
class BuiltinActivityAdmin(ReadOnlyAdmin):
    list_display = ("subject", "kind", "contact", "owner", "created_at")
    list_filter = ("kind", "created_at")
    list_select_related = ("contact", "owner")
    search_fields = ("subject", "=id", "contact__name")
    date_hierarchy = "created_at"
