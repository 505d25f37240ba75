from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from segmentation.models import Segment
from segmentation.webhooks import services

EVENT_CHOICES = [("both", "Entered and exited"), ("entered", "Entered only"), ("exited", "Exited only")]
SCOPE_CHOICES = [("all", "Every segment, including new ones"), ("chosen", "Only the segments I choose")]


class WebhookForm(forms.Form):
    """Input of a subscription; the target rules are the service's (``webhook_url_check``)."""

    url = forms.CharField(
        max_length=2000,
        # Not stripped: a line break at the end is refused (``services.webhook_url_check``), not dropped.
        strip=False,
        label="Endpoint URL",
        help_text="Receives a signed POST for each person who enters or leaves. Public http(s) addresses only.",
        widget=forms.URLInput(attrs={"placeholder": "https://example.com/hooks/cohortly", "autocomplete": "off"}),
    )
    description = forms.CharField(
        max_length=200,
        required=False,
        label="Name",
        help_text="Optional: tells your webhooks apart, e.g. “CRM sync”. Unique in this workspace.",
    )
    events = forms.ChoiceField(choices=EVENT_CHOICES, initial="both", label="Events")
    scope = forms.ChoiceField(choices=SCOPE_CHOICES, initial="all", label="Segments", widget=forms.RadioSelect)
    segments = forms.ModelMultipleChoiceField(
        # Empty until __init__ sets the workspace's segments; no query runs at import.
        queryset=Segment.objects.unscoped().none(),
        required=False,
        label="Chosen segments",
        widget=forms.CheckboxSelectMultiple,
    )

    def __init__(self, *args: Any, segments: QuerySet[Segment], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["segments"].queryset = segments  # type: ignore[attr-defined]

    def clean_url(self) -> str:
        """Checked here too, so a refused target shows along with the form's other errors."""
        try:
            return services.webhook_url_check(self.cleaned_data["url"])
        except ValidationError as error:
            raise forms.ValidationError(error.message_dict["url"]) from error

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("scope") == "chosen" and not data.get("segments"):
            self.add_error("segments", "Choose at least one segment, or every segment.")
        return data
