"""Engagement endpoints of campaign emails: public (the signed token is the credential), no login.

- ``GET /e/o/<token>/``: the open pixel (a 1x1 GIF);
- ``GET /e/c/<token>/?u=<target>``: a click, redirected (302) to a link of the send's own message;
- ``GET /e/u/<token>/``: the unsubscribe page; ``POST`` the same URL with
  ``List-Unsubscribe=One-Click`` (RFC 8058, what mailbox providers send, and the page's button)
  unsubscribes. CSRF-exempt: the provider posts without a session, the token authenticates.

A forged or damaged token answers 404 (JSON for the pixel and clicks, the error page for
people), a click to a target the message did not hold 400; never a 500.
"""

from __future__ import annotations

import base64
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import URLPattern
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from accounts.models import Workspace
from accounts.tenancy import workspace_scope
from campaigns import channels, engagement
from campaigns.models import Suppression
from core.api import error_body
from core.errors import answer

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
ONE_CLICK_FIELD = "List-Unsubscribe"
ONE_CLICK_VALUE = "One-Click"


def _json_error(status: int, message: str, code: str, field: str | None = None) -> JsonResponse:
    return JsonResponse(error_body(message, code, {field: [message]} if field else None), status=status)


@never_cache
@require_GET
def open_pixel(request: HttpRequest, token: str) -> HttpResponse:
    key = engagement.token_read(purpose=engagement.OPEN, token=token)
    if key is None:
        return _json_error(404, "This tracking link is not valid.", "not_found")
    # Entry point: the signed token names the workspace.
    with workspace_scope(key.workspace_id):
        send = engagement.send_found(key)
        if send is not None:
            engagement.send_opened(send=send)
    return HttpResponse(PIXEL, content_type="image/gif")


@never_cache
@require_GET
def click(request: HttpRequest, token: str) -> HttpResponse:
    target = request.GET.get("u", "")
    if not target:
        return _json_error(400, "The link has no target.", "invalid", "u")
    key = engagement.token_read(purpose=engagement.CLICK, token=token, target=target)
    if key is None:
        return _json_error(404, "This link is not valid.", "not_found")
    # Entry point: the signed token names the workspace.
    with workspace_scope(key.workspace_id):
        send = engagement.send_found(key)
        if send is None:
            return _json_error(404, "This link is not valid any more.", "not_found")
        links = channels.send_links(send)
        # None: the message cannot be built again (its template fails for the person now); the
        # signature, made for this target of this send only, is then the check.
        if links is not None and target not in links:
            return _json_error(400, "This address is not a link of the message.", "invalid", "u")
        engagement.send_clicked(send=send, url=target)
    return HttpResponseRedirect(target)


@csrf_exempt
@never_cache
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    key = engagement.token_read(purpose=engagement.UNSUBSCRIBE, token=token)
    if key is None:
        return answer(request, 404, "This unsubscribe link is not valid.", "not_found")
    # Entry point: the signed token names the workspace.
    with workspace_scope(key.workspace_id):
        send = engagement.send_found(key)
        if send is None or not send.recipient:
            return answer(request, 404, "This unsubscribe link is not valid any more.", "not_found")
        workspace = Workspace.objects.filter(pk=key.workspace_id).first()
        if workspace is None:
            return answer(request, 404, "This unsubscribe link is not valid any more.", "not_found")
        context = {"address": send.recipient, "sender": workspace.name, "token": token}
        if request.method == "POST":
            if request.POST.get(ONE_CLICK_FIELD) != ONE_CLICK_VALUE:
                return answer(request, 400, f"Send {ONE_CLICK_FIELD}={ONE_CLICK_VALUE} to unsubscribe.", "invalid")
            engagement.send_unsubscribed(send=send)
            return render(request, "campaigns/unsubscribe.html", {**context, "done": True})
        done = Suppression.objects.filter(workspace_id=key.workspace_id, address=send.recipient.lower()).exists()
        return render(request, "campaigns/unsubscribe.html", {**context, "done": done})


def _anymail_tracking_views() -> dict[str, Any]:
    """django-anymail's tracking webhook view of each ESP, by the ESP's name in its URL."""
    from anymail import urls as anymail_urls

    found: dict[str, Any] = {}
    for pattern in anymail_urls.urlpatterns:
        name = getattr(pattern, "name", None) or ""
        if isinstance(pattern, URLPattern) and name.endswith("_tracking_webhook"):
            found[name.removesuffix("_tracking_webhook")] = pattern.callback
    return found


@csrf_exempt
def esp_tracking(request: HttpRequest, esp: str) -> HttpResponse:
    """``/anymail/<esp>/tracking/``: the ESP's tracking webhook, as django-anymail documents its URL.

    Handled by anymail's own view for that ESP (it checks ``ANYMAIL_WEBHOOK_SECRET`` and the
    ESP's signature, then hands the events to ``engagement.esp_tracking_received``); one route
    here instead of anymail's dozens. CSRF-exempt as anymail's views are.
    """
    view = _ANYMAIL_TRACKING.get(esp)
    if view is None:
        return _json_error(404, f"No tracking webhook for {esp!r}.", "not_found")
    response: HttpResponse = view(request)
    return response


_ANYMAIL_TRACKING = _anymail_tracking_views()
