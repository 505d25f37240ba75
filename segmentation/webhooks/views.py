"""Settings pages of webhooks: subscriptions, their secret (shown once) and delivery log."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from accounts import reveal
from accounts.decorators import workspace_required
from accounts.requests import MemberRequest
from segmentation.webhooks import selectors, services
from segmentation.webhooks.forms import WebhookForm

LOG_PAGE_SIZE = 25


@workspace_required(write="admin")
def settings_webhooks(request: MemberRequest) -> HttpResponse:
    workspace = request.workspace
    form = WebhookForm(request.POST or None, segments=selectors.segments_for_choice(workspace))
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                subscription, secret = services.webhook_create(
                    workspace=workspace,
                    actor=request.user,
                    url=data["url"],
                    description=data["description"],
                    segments=list(data["segments"]) if data["scope"] == "chosen" else None,
                    on_entered=data["events"] in ("both", "entered"),
                    on_exited=data["events"] in ("both", "exited"),
                )
            except ValidationError as error:
                for field, errors in error.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                path = reverse("settings_webhook_detail", args=[subscription.pk])
                return reveal.reveal_on_next_page(redirect(path), path=path, secret=secret)
        status = 400
    subscriptions = list(selectors.subscriptions_list(workspace))
    chosen = selectors.subscription_segments(workspace, [s.pk for s in subscriptions])
    return render(
        request,
        "segmentation/settings_webhooks.html",
        {"tab": "webhooks", "form": form, "subscriptions": [(s, chosen[s.pk]) for s in subscriptions]},
        status=status,
    )


@workspace_required()
@require_safe
def settings_webhook_detail(request: MemberRequest, pk: int) -> HttpResponse:
    workspace = request.workspace
    subscription = get_object_or_404(selectors.subscriptions_list(workspace), pk=pk)
    path = request.path
    created_secret = reveal.take_revealed(request, path=path)
    page = Paginator(selectors.deliveries_log(workspace, subscription), LOG_PAGE_SIZE).get_page(request.GET.get("page"))
    names = selectors.segment_names(workspace, {d.segment_id for d in page.object_list if d.segment_id is not None})
    response = render(
        request,
        "segmentation/settings_webhook_detail.html",
        {
            "tab": "webhooks",
            "subscription": subscription,
            "segments": selectors.subscription_segments(workspace, [subscription.pk])[subscription.pk],
            "created_secret": created_secret,
            "page": page,
            "deliveries": [(d, names.get(d.segment_id or 0, "")) for d in page.object_list],
        },
    )
    return reveal.forget_revealed(response, path=path) if created_secret else response


@workspace_required(write="admin")
@require_POST
def settings_webhook_test(request: MemberRequest, pk: int) -> HttpResponse:
    workspace = request.workspace
    subscription = get_object_or_404(selectors.subscriptions_list(workspace), pk=pk)
    delivery = services.webhook_send_test(workspace=workspace, subscription=subscription)
    messages.success(request, f"Test delivery #{delivery.pk} queued. Its result shows in the log below.")
    return redirect("settings_webhook_detail", pk=pk)


@workspace_required(write="admin")
@require_POST
def settings_webhook_rotate(request: MemberRequest, pk: int) -> HttpResponse:
    workspace = request.workspace
    subscription = get_object_or_404(selectors.subscriptions_list(workspace), pk=pk)
    secret = services.webhook_rotate_secret(workspace=workspace, subscription=subscription, actor=request.user)
    path = reverse("settings_webhook_detail", args=[subscription.pk])
    return reveal.reveal_on_next_page(redirect(path), path=path, secret=secret)


@workspace_required(write="admin")
@require_POST
def settings_webhook_delete(request: MemberRequest, pk: int) -> HttpResponse:
    workspace = request.workspace
    subscription = get_object_or_404(selectors.subscriptions_list(workspace), pk=pk)
    services.webhook_delete(workspace=workspace, subscription=subscription, actor=request.user)
    messages.success(request, f"Webhook to {subscription.url} deleted. Nothing more is sent to it.")
    return redirect("settings_webhooks")
