"""The admin's rules page as a form: each auto-logging rule a proper field, for one scope.

A rule is either set at the page's scope (site-wide, or one RingCentral account) or
inherited from the scope above; saving goes through `rules.services`, which check the
values again. The form only turns fields into the values those services take.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.db import models

from rules.parameters import (
    PLACEHOLDER_NAME_MAX,
    RULE_PARAMETERS,
    CallDirection,
    CallResultKind,
    MessageKind,
    MultipleMatchPolicy,
    Parameter,
    PlaceholderNameSource,
    SettingKind,
    UnknownContactAction,
)
from rules.selectors import PREVIEW_NUMBER
from rules.services import placeholder_name_errors, rule_setting_clean

# The labelled choices of each rule offering some (the parameters keep the bare values).
RULE_CHOICES: dict[str, type[models.TextChoices]] = {
    "unknownContactAction": UnknownContactAction,
    "placeholderNameSource": PlaceholderNameSource,
    "multipleMatchPolicy": MultipleMatchPolicy,
    "placeholderDirections": CallDirection,
    "placeholderCallResults": CallResultKind,
    "placeholderMessageTypes": MessageKind,
}
FIRST_CONTACT_TYPE = "The CRM's first contact type"
PREVIEW_CALLS_DEFAULT = 100
PREVIEW_CALLS_MAX = 1000


def value_display(parameter: Parameter, value: Any) -> str:
    """A rule value as the admin reads it: choice labels, seconds, the contact type."""
    labels = dict(RULE_CHOICES[parameter.key].choices) if parameter.key in RULE_CHOICES else {}
    if parameter.kind == SettingKind.MULTI_CHOICE:
        return ", ".join(str(labels.get(v, v)) for v in value or []) or "none"
    if parameter.kind == SettingKind.SECONDS:
        return f"{value} s"
    if parameter.kind == SettingKind.CONTACT_TYPE:
        return str(value) if value else FIRST_CONTACT_TYPE
    return str(labels.get(value, value))


def _value_field(parameter: Parameter, contact_types: list[tuple[str, str]]) -> forms.Field:
    common: dict[str, Any] = {"required": False, "label": parameter.label, "help_text": parameter.description}
    choices = RULE_CHOICES[parameter.key].choices if parameter.key in RULE_CHOICES else None
    if parameter.kind == SettingKind.CHOICE:
        return forms.ChoiceField(choices=choices or [(c, c) for c in parameter.choices], **common)
    if parameter.kind == SettingKind.MULTI_CHOICE:
        return forms.MultipleChoiceField(
            choices=choices or [(c, c) for c in parameter.choices],
            widget=forms.CheckboxSelectMultiple,
            **common,
        )
    if parameter.kind == SettingKind.SECONDS:
        return forms.IntegerField(min_value=0, max_value=86_400, **common)
    if parameter.kind == SettingKind.CONTACT_TYPE:
        return forms.ChoiceField(choices=[("", FIRST_CONTACT_TYPE), *contact_types], **common)
    if parameter.kind == SettingKind.TEMPLATE:
        widget = forms.TextInput(attrs={"class": "vTextField name-template", "data-preview": parameter.key})
        return forms.CharField(max_length=PLACEHOLDER_NAME_MAX, widget=widget, **common)
    return forms.CharField(max_length=200, **common)


def name_field_name(index: int) -> str:
    return f"name_{index}"


class RulesPageForm(forms.Form):
    """A scope's rules: per rule `set_<key>` (off: inherit), `<key>` and `custom_<key>`
    (users may change it); per contact type a default placeholder name (blank: inherit);
    and what the previews use: a sample number and how many recorded calls."""

    sample_number = forms.CharField(
        label="Sample number", initial=PREVIEW_NUMBER, max_length=32, required=False
    )
    preview_calls = forms.IntegerField(
        label="Recorded calls to replay",
        initial=PREVIEW_CALLS_DEFAULT,
        min_value=1,
        max_value=PREVIEW_CALLS_MAX,
        required=False,
    )

    def __init__(self, *args: Any, contact_types: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.contact_types = contact_types
        for parameter in RULE_PARAMETERS:
            key = parameter.key
            self.fields[f"set_{key}"] = forms.BooleanField(
                required=False,
                label="Set here",
                widget=forms.CheckboxInput(attrs={"aria-label": f"Set here: {parameter.label}"}),
            )
            self.fields[key] = _value_field(parameter, contact_types)
            self.fields[f"custom_{key}"] = forms.BooleanField(
                required=False,
                label="Users may change it",
                widget=forms.CheckboxInput(attrs={"aria-label": f"Users may change it: {parameter.label}"}),
            )
        for index, (value, label) in enumerate(contact_types):
            self.fields[name_field_name(index)] = forms.CharField(
                label=label,
                required=False,
                max_length=PLACEHOLDER_NAME_MAX,
                widget=forms.TextInput(attrs={"class": "vTextField name-template", "data-preview": value}),
            )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for parameter in RULE_PARAMETERS:
            key = parameter.key
            if not data.get(f"set_{key}") or key in self.errors:
                continue
            value = data.get(key)
            if parameter.kind == SettingKind.MULTI_CHOICE:
                value = list(value or [])
            elif value is None or (value == "" and parameter.kind != SettingKind.CONTACT_TYPE):
                self.add_error(key, "Enter a value, or untick “Set here” to inherit it.")
                continue
            try:
                data[key] = rule_setting_clean(key=key, value=value)
            except ValueError as exc:
                self.add_error(key, str(exc))
        for index, (contact_type, _) in enumerate(self.contact_types):
            field_name = name_field_name(index)
            template = data.get(field_name) or ""
            if template.strip():
                errors = placeholder_name_errors(contact_type=contact_type, template=template)
                for message in errors.values():
                    self.add_error(field_name, message)
            else:
                data[field_name] = ""
        return data

    def entries(self) -> dict[str, dict[str, Any] | None]:
        """The rules as `rule_settings_scope_save` takes them (None: inherit)."""
        data = self.cleaned_data
        return {
            p.key: (
                {"value": data[p.key], "customizable": bool(data.get(f"custom_{p.key}"))}
                if data.get(f"set_{p.key}")
                else None
            )
            for p in RULE_PARAMETERS
        }

    def names(self) -> dict[str, str]:
        """The default placeholder names as `placeholder_names_scope_save` takes them."""
        data = self.cleaned_data
        return {value: data.get(name_field_name(i)) or "" for i, (value, _) in enumerate(self.contact_types)}
