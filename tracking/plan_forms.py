"""Input of the tracking plan's settings page; the plan's own rules are ``tracking.plan``'s edits."""

from __future__ import annotations

from typing import Any

from django import forms

from tracking import plan

# An uploaded or pasted plan: far more than a plan of MAX_EVENTS events of MAX_PROPERTIES each needs
# in practice, small enough to read in one request.
MAX_IMPORT_BYTES = 2 * 1024 * 1024
TYPE_CHOICES = [(name, name) for name in plan.PROPERTY_TYPES]


class PlanSettingsForm(forms.Form):
    block_unplanned_events = forms.BooleanField(
        required=False,
        label="Block unplanned events",
        help_text="Track calls of events that are not in the plan go to the quarantine instead of being stored.",
    )


class EventAddForm(forms.Form):
    name = forms.CharField(
        max_length=plan.MAX_NAME_LENGTH,
        label="Event name",
        help_text="Exactly as your track calls send it.",
        widget=forms.TextInput(attrs={"placeholder": "Order Completed", "autocomplete": "off", "list": "seen-events"}),
    )
    description = forms.CharField(max_length=plan.MAX_DESCRIPTION_LENGTH, required=False, label="Description")
    quarantine_violations = forms.BooleanField(
        required=False,
        label="Quarantine violations",
        help_text="A call that breaks the plan goes to the quarantine instead of being stored.",
    )
    with_seen_properties = forms.BooleanField(
        required=False,
        initial=True,
        label="Add the properties its recent events carried",
        help_text="Each with the type most of them had; none required.",
    )


class EventForm(forms.Form):
    """Names a planned event (hidden field of the event's own forms)."""

    event = forms.CharField(strip=False, widget=forms.HiddenInput)


class EventUpdateForm(EventForm):
    description = forms.CharField(max_length=plan.MAX_DESCRIPTION_LENGTH, required=False, label="Description")
    quarantine_violations = forms.BooleanField(required=False, label="Quarantine violations")


class PropertySetForm(EventForm):
    name = forms.CharField(
        max_length=plan.MAX_NAME_LENGTH,
        label="Property",
        widget=forms.TextInput(attrs={"placeholder": "total", "autocomplete": "off"}),
    )
    type = forms.ChoiceField(choices=TYPE_CHOICES, label="Type")
    required = forms.BooleanField(required=False, label="Required")


class PropertyChangeForm(EventForm):
    """A listed property's type and required flag (its name comes as it is stored)."""

    name = forms.CharField(strip=False, widget=forms.HiddenInput)
    type = forms.ChoiceField(choices=TYPE_CHOICES, label="Type")
    required = forms.BooleanField(required=False, label="Required")


class PropertyRemoveForm(EventForm):
    name = forms.CharField(strip=False, widget=forms.HiddenInput)


class ImportForm(forms.Form):
    file = forms.FileField(required=False, label="A JSON file")
    text = forms.CharField(
        required=False,
        strip=False,
        label="Or paste the JSON",
        widget=forms.Textarea(attrs={"rows": 8, "class": "mono", "spellcheck": "false"}),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        upload = data.get("file")
        text = data.get("text") or ""
        if upload is not None and text.strip():
            raise forms.ValidationError("Choose a file or paste the JSON, not both.")
        if upload is None and not text.strip():
            raise forms.ValidationError("Choose a JSON file or paste the plan.")
        if upload is not None:
            if upload.size > MAX_IMPORT_BYTES:
                raise forms.ValidationError(f"The file is over {MAX_IMPORT_BYTES // 1024 // 1024} MiB.")
            raw = upload.read()
            try:
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError as error:
                raise forms.ValidationError("The file is not UTF-8 text.") from error
        elif len(text.encode()) > MAX_IMPORT_BYTES:
            raise forms.ValidationError(f"The text is over {MAX_IMPORT_BYTES // 1024 // 1024} MiB.")
        data["json"] = text
        return data
