from __future__ import annotations

from typing import Any

from django import forms

from tracking import triggers
from tracking.models import TrackingTrigger, TriggerKind


class TriggerForm(forms.Form):
    """Input of a trigger; the rules themselves are ``tracking.triggers.check`` (through the service)."""

    kind = forms.ChoiceField(choices=TriggerKind.choices, initial=TriggerKind.CLICK, label="When")
    selector = forms.CharField(
        max_length=triggers.SELECTOR_MAX_LENGTH,
        required=False,
        label="CSS selector",
        help_text="Clicks on elements matching it, or inside them. Several selectors: separate with commas.",
        widget=forms.TextInput(attrs={"class": "mono", "placeholder": "#product-image", "autocomplete": "off"}),
    )
    event_name = forms.CharField(
        max_length=triggers.EVENT_NAME_MAX_LENGTH,
        required=False,
        label="Event name",
        help_text="Left empty: named from the selector (#product-image gives “Product Image Clicked”), "
        "“Page Scrolled” or “Page Engaged”.",
        widget=forms.TextInput(attrs={"placeholder": "Product Image Clicked", "autocomplete": "off"}),
    )
    thresholds = forms.CharField(
        max_length=200,
        required=False,
        label="Thresholds",
        help_text="Scroll depth: percentages (25, 50, 75, 100). Engaged time: seconds of visible, focused time (180).",
        widget=forms.TextInput(attrs={"placeholder": "25, 50, 75, 100", "inputmode": "numeric"}),
    )
    enabled = forms.BooleanField(required=False, initial=True, label="Enabled")

    @classmethod
    def for_trigger(cls, trigger: TrackingTrigger, data: Any = None) -> TriggerForm:
        initial = {
            "kind": trigger.kind,
            "selector": trigger.selector,
            "event_name": trigger.event_name,
            "thresholds": ", ".join(str(v) for v in trigger.thresholds),
            "enabled": trigger.enabled,
        }
        return cls(data, initial=initial)

    def clean_thresholds(self) -> list[int] | None:
        """``None`` when left empty (the kind's defaults apply on create)."""
        text = self.cleaned_data.get("thresholds", "")
        if not text.strip():
            return None
        try:
            return triggers.parse_thresholds(text)
        except triggers.TriggerInvalid as error:
            raise forms.ValidationError(error.message) from error
