"""The accounts UI in a real browser: sign-up to a second user who can only look.

Headless Debian Chromium through Playwright's sync API against pytest-django's ``live_server``.
Every page fails the test on a JavaScript error, a static file that does not load, or a
``window.confirm`` the flow did not announce. Screenshots land in tests/artifacts/ for review.
"""

from __future__ import annotations

import contextlib
import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core import mail
from playwright.sync_api import Browser, BrowserContext, Page, expect

from accounts import services
from accounts.keys import DISPLAY_LENGTH
from accounts.models import ApiKey, AuditLogEntry, Invitation, Membership, User, Workspace
from accounts.tenancy import workspace_scope
from tests import factories

pytestmark = pytest.mark.browser

LAPTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
TABLET = {"width": 834, "height": 1112}  # the navigation folds into a drawer here too
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

OWNER_EMAIL = "ada@acme.example"
VIEWER_EMAIL = "grace@acme.example"
PASSWORD = factories.PASSWORD
FIRST_WORKSPACE = "Acme Analytics"
SECOND_WORKSPACE = "Acme Staging"
ROLE_REFUSAL = "Your role in this workspace does not allow this change."


# Reports each Content-Security-Policy violation of a page to the test (Playwright's init scripts
# and bindings run outside the page's policy).
CSP_VIOLATIONS_JS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.reportCspViolation(`${event.violatedDirective} blocked ${event.blockedURI || "inline"}`
    + ` at ${event.sourceFile}:${event.lineNumber}: ${event.sample}`);
});
"""


class Watch:
    """Collects what must never happen on a page: JS errors, broken static files, surprise dialogs,
    anything the Content-Security-Policy blocks."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.expected_confirms: list[str] = []

    def attach(self, context: BrowserContext) -> BrowserContext:
        context.expose_binding(
            "reportCspViolation",
            lambda source, text: self.problems.append(f"CSP violation on {source['page'].url}: {text}"),
        )
        context.add_init_script(CSP_VIOLATIONS_JS)
        context.on("page", self._page)
        for page in context.pages:
            self._page(page)
        return context

    def _page(self, page: Page) -> None:
        page.on("pageerror", lambda error: self.problems.append(f"JS error on {page.url}: {error}"))
        page.on("dialog", self._dialog)
        page.on(
            "console",
            lambda message: (
                self.problems.append(f"console on {page.url}: {message.text}")
                if "Content Security Policy" in message.text
                else None
            ),
        )
        page.on(
            "response",
            lambda response: (
                self.problems.append(f"{response.status} for {response.url}")
                if "/static/" in response.url and response.status >= 400
                else None
            ),
        )

    def _dialog(self, dialog) -> None:
        if dialog.type == "confirm" and self.expected_confirms and self.expected_confirms[0] in dialog.message:
            self.expected_confirms.pop(0)
            dialog.accept()
        else:
            self.problems.append(f"unexpected {dialog.type} dialog: {dialog.message}")
            dialog.dismiss()

    @contextlib.contextmanager
    def confirm(self, text: str) -> Iterator[None]:
        """Accept exactly one confirm dialog containing ``text`` during the block."""
        self.expected_confirms.append(text)
        yield
        assert self.expected_confirms == [], f"no confirm dialog containing {text!r} appeared"

    def check(self) -> None:
        assert self.problems == []


@pytest.fixture
def watch() -> Iterator[Watch]:
    watch = Watch()
    yield watch
    watch.check()


def _new_context(browser: Browser, watch: Watch, viewport: dict[str, int] = LAPTOP) -> BrowserContext:
    return watch.attach(browser.new_context(viewport=viewport))


def _screenshot(page: Page, name: str, viewport: dict[str, int], *, full_page: bool = True) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-{viewport['width']}x{viewport['height']}.png"), full_page=full_page)


def _main_nav(page: Page, name: str) -> None:
    """Follow a link of the main navigation, opening it first where it folds away (phones)."""
    toggle = page.get_by_role("button", name="Menu")
    if toggle.is_visible():
        toggle.click()
    page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True).click()


def _settings_tab(page: Page, name: str) -> None:
    _main_nav(page, "Settings")
    tab = page.get_by_role("navigation", name="Settings").get_by_role("link", name=name, exact=True)
    tab.click()
    expect(tab).to_have_attribute("aria-current", "page")


def _log_in(page: Page, base: str, email: str, password: str) -> None:
    page.goto(f"{base}/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{base}/")


def _bearer_get(url: str, secret: str) -> tuple[int, dict]:
    """A request with no cookies at all: only the key can authenticate it."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {secret}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # local live server
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


# The settings buttons only owners and admins get, by page.
CHANGE_CONTROLS = {
    "Workspace": [("button", "Save")],
    "Members": [("button", "Remove"), ("link", "Invite people")],
    "Invitations": [("button", "Create invitation")],
    "API keys": [("button", "Create key")],
    "Write key": [("button", "Rotate write key")],
}


def test_sign_up_keys_second_workspace_and_a_viewer_who_sees_only_their_workspace(live_server, browser, watch):
    base = live_server.url

    # --- The owner signs up: the workspace is created and the dashboard names it ----------------
    owner_context = _new_context(browser, watch)
    page = owner_context.new_page()
    page.goto(f"{base}/signup/")
    page.get_by_label("Your name").fill("Ada Lovelace")
    page.get_by_label("Work email").fill(OWNER_EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Workspace name").fill(FIRST_WORKSPACE)
    page.get_by_role("button", name="Create workspace").click()
    expect(page).to_have_url(f"{base}/signup/sent/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your inbox")
    # The emailed link opens the workspace
    [link] = re.findall(r"https?://[^/\s]+(/signup/confirm/[^/\s]+/)", mail.outbox[-1].body)
    page.goto(f"{base}{link}")
    page.get_by_role("button", name="Create workspace").click()
    expect(page).to_have_url(f"{base}/")
    expect(page.get_by_role("heading", level=1)).to_have_text(FIRST_WORKSPACE)
    expect(page.get_by_role("status")).to_have_text(f"Welcome to Cohortly. {FIRST_WORKSPACE} is ready.")
    _screenshot(page, "dashboard-after-signup", LAPTOP)
    first = Workspace.objects.get(name=FIRST_WORKSPACE)
    owner = User.objects.get(email=OWNER_EMAIL)
    with workspace_scope(first):
        assert Membership.objects.get(user=owner).role == "owner"

    # --- An API key: shown once, starts with cly_sk_, works as Bearer, gone after a reload ------
    _settings_tab(page, "API keys")
    page.get_by_label("Key name").fill("CRM sync")
    page.get_by_role("button", name="Create key").click()
    secret_box = page.get_by_label("New API key")
    expect(secret_box).to_be_visible()
    secret = secret_box.input_value()
    assert secret.startswith("cly_sk_")
    assert len(secret) > len("cly_sk_") + 20
    status, body = _bearer_get(f"{base}/api/v1/workspace/", secret)
    assert (status, body["id"], body["name"]) == (200, first.pk, FIRST_WORKSPACE)
    status, body = _bearer_get(f"{base}/api/v1/workspace/", secret[:-4] + "xxxx")
    assert status == 401
    page.goto(page.url)
    key_cell = page.get_by_role("cell", name=re.compile("^CRM sync"))
    expect(key_cell).to_contain_text(f"{secret[:DISPLAY_LENGTH]}…")
    expect(page.get_by_label("New API key")).to_have_count(0)
    assert secret not in page.content()
    assert secret[len("cly_sk_") :] not in page.content()

    # The owner has every change control the viewer must not have.
    for tab, controls in CHANGE_CONTROLS.items():
        if tab == "Members":
            continue  # the owner cannot remove themselves; checked once the viewer has joined
        _settings_tab(page, tab)
        for role, name in controls:
            expect(page.get_by_role(role, name=name, exact=True)).to_be_visible()

    # --- The owner rotates the write key, confirming the dialog -----------------------------------
    _settings_tab(page, "Write key")
    old_write_key = page.get_by_label("Write key").input_value()
    with watch.confirm("Rotate the write key?"):
        page.get_by_role("button", name="Rotate write key").click()
        expect(page.get_by_role("status")).to_contain_text("Write key rotated")
    write_key = page.get_by_label("Write key").input_value()
    assert write_key.startswith("cly_wk_")
    assert write_key != old_write_key
    first.refresh_from_db()
    assert first.write_key == write_key

    # --- A second workspace of the same owner --------------------------------------------------
    _settings_tab(page, "Workspace")
    page.get_by_role("link", name="New workspace").click()
    _screenshot(page, "workspace-new", LAPTOP)
    page.get_by_label("Workspace name").fill(SECOND_WORKSPACE)
    page.get_by_role("button", name="Create workspace").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(SECOND_WORKSPACE)
    switcher = page.get_by_label("Workspace", exact=True)
    expect(switcher.locator("option")).to_have_text([FIRST_WORKSPACE, SECOND_WORKSPACE])
    switcher.select_option(label=FIRST_WORKSPACE)
    expect(page.get_by_role("heading", level=1)).to_have_text(FIRST_WORKSPACE)

    # --- Invite a viewer into the first workspace; the link is read from the page -------------
    _settings_tab(page, "Invitations")
    page.get_by_label("Email").fill(VIEWER_EMAIL)
    page.get_by_label("Role").select_option(label="Viewer")
    page.get_by_role("button", name="Create invitation").click()
    link = page.get_by_label("Invitation link").input_value()
    assert link.startswith(f"{base}/invite/")
    expect(page.get_by_role("cell", name=VIEWER_EMAIL, exact=True)).to_be_visible()

    # --- In a new browser context the viewer signs up through the invitation ------------------
    viewer_context = _new_context(browser, watch)
    viewer = viewer_context.new_page()
    viewer.goto(link)
    expect(viewer.get_by_role("heading", level=1)).to_have_text(f"Join {FIRST_WORKSPACE}")
    _screenshot(viewer, "invitation-accept", LAPTOP)
    viewer.get_by_label("Your name").fill("Grace Hopper")
    viewer.get_by_label("Choose a password").fill(PASSWORD)
    viewer.get_by_role("button", name="Create account and join").click()
    expect(viewer).to_have_url(f"{base}/")
    expect(viewer.get_by_role("heading", level=1)).to_have_text(FIRST_WORKSPACE)
    expect(viewer.get_by_text(VIEWER_EMAIL, exact=True)).to_be_visible()

    viewer.get_by_role("button", name="Log out").click()
    expect(viewer).to_have_url(f"{base}/login/")
    _log_in(viewer, base, VIEWER_EMAIL, PASSWORD)
    expect(viewer.get_by_role("heading", level=1)).to_have_text(FIRST_WORKSPACE)
    expect(viewer.get_by_label("Workspace", exact=True).locator("option")).to_have_text([FIRST_WORKSPACE])
    assert SECOND_WORKSPACE not in viewer.content()

    # --- As viewer, no change controls on any settings page; the other workspace nowhere ------
    for tab, controls in CHANGE_CONTROLS.items():
        _settings_tab(viewer, tab)
        expect(viewer.get_by_role("heading", level=1)).to_have_text("Settings")
        for role, name in controls:
            expect(viewer.get_by_role(role, name=name)).to_have_count(0)
        expect(viewer.get_by_role("button", name=re.compile("Revoke|Rotate|Remove|Create|Save"))).to_have_count(0)
        expect(viewer.get_by_role("combobox", name=re.compile("Role of"))).to_have_count(0)
        assert SECOND_WORKSPACE not in viewer.content()
    _settings_tab(viewer, "Audit log")
    assert SECOND_WORKSPACE not in viewer.content()
    _settings_tab(viewer, "Members")
    _screenshot(viewer, "members-as-viewer", LAPTOP)

    # The owner does see the viewer's row controls (the same page, the other role).
    _settings_tab(page, "Members")
    expect(page.get_by_role("button", name="Remove")).to_have_count(1)
    expect(page.get_by_role("button", name=f"Remove {VIEWER_EMAIL}", exact=True)).to_be_visible()
    expect(page.get_by_role("combobox", name=f"Role of {VIEWER_EMAIL}")).to_have_value("viewer")

    # --- The viewer's own POSTs, with a valid CSRF token, answer 403 and change nothing -------
    with workspace_scope(first):
        owner_membership = Membership.objects.get(user=owner)
        before = {
            "workspace": (first.name, first.write_key),
            "keys": list(ApiKey.objects.values_list("name", "revoked_at")),
            "invitations": Invitation.objects.count(),
            "members": sorted(Membership.objects.values_list("user__email", "role")),
            "audit": AuditLogEntry.objects.count(),
        }
        key = ApiKey.objects.get()
        invitation = Invitation.objects.get()
    csrf = next(c["value"] for c in viewer_context.cookies() if c["name"] == "csrftoken")
    attempts = {
        "/settings/": {"name": "Taken over"},
        "/settings/api-keys/": {"name": "exfiltrate"},
        "/settings/write-key/": {},
        "/settings/invitations/": {"email": "mallory@example.com", "role": "owner"},
        f"/settings/members/{owner_membership.pk}/remove/": {},
        f"/settings/members/{owner_membership.pk}/role/": {"role": "viewer"},
        f"/settings/api-keys/{key.pk}/revoke/": {},
        f"/settings/invitations/{invitation.pk}/revoke/": {},
    }
    for path, form in attempts.items():
        response = viewer.request.post(
            f"{base}{path}",
            form={"csrfmiddlewaretoken": csrf, **form},
            headers={"X-CSRFToken": csrf, "Referer": f"{base}/settings/"},
            max_redirects=0,
        )
        assert (path, response.status) == (path, 403)
        assert ROLE_REFUSAL in response.text(), path
    first.refresh_from_db()
    with workspace_scope(first):
        after = {
            "workspace": (first.name, first.write_key),
            "keys": list(ApiKey.objects.values_list("name", "revoked_at")),
            "invitations": Invitation.objects.count(),
            "members": sorted(Membership.objects.values_list("user__email", "role")),
            "audit": AuditLogEntry.objects.count(),
        }
    assert after == before
    assert before["members"] == [(OWNER_EMAIL, "owner"), (VIEWER_EMAIL, "viewer")]

    # The viewer's session is still good: a read answers 200.
    assert viewer.request.get(f"{base}/settings/audit-log/").status == 200

    owner_context.close()
    viewer_context.close()
    watch.check()


def test_login_by_keyboard_then_skip_link_and_nav_focus(live_server, browser, watch):
    # Given an account
    workspace = factories.WorkspaceFactory(name=FIRST_WORKSPACE)
    user = factories.member(workspace, role="owner")
    context = _new_context(browser, watch)
    page = context.new_page()
    base = live_server.url

    # When the login form is used with the keyboard only
    page.goto(f"{base}/login/")
    expect(page.get_by_label("Email")).to_be_focused()
    page.keyboard.type(user.email)
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    _assert_focus_visible(page)
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Sign in")).to_be_focused()
    _assert_focus_visible(page)
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")

    # Then the user is signed in
    expect(page).to_have_url(f"{base}/")
    expect(page.get_by_role("heading", level=1)).to_have_text(FIRST_WORKSPACE)

    # And the first Tab reaches a visible skip link that moves focus to the content
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    _assert_focus_visible(page)
    page.keyboard.press("Enter")
    expect(page.locator("main#main")).to_be_focused()

    # And the workspace switcher does not jump on an arrow key: Enter confirms the choice
    other = factories.WorkspaceFactory(name=SECOND_WORKSPACE)
    factories.member(other, role="viewer", user=user)
    page.goto(f"{base}/")
    switcher = page.get_by_label("Workspace", exact=True)
    switcher.focus()
    page.evaluate("window.stillThisPage = true")
    page.keyboard.press("ArrowDown")
    expect(switcher).to_have_value(str(other.pk))
    page.wait_for_timeout(500)
    assert page.evaluate("window.stillThisPage") is True
    expect(page.get_by_role("heading", level=1)).to_have_text(FIRST_WORKSPACE)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text(SECOND_WORKSPACE)

    # And Tab from the top of the page reaches the main navigation, each stop visibly focused
    page.goto(f"{base}/")
    reached = []
    for _ in range(15):
        page.keyboard.press("Tab")
        _assert_focus_visible(page)
        reached.append(page.evaluate("document.activeElement.textContent.trim()"))
        if page.evaluate("!!document.activeElement.closest('nav[aria-label=Main]')"):
            break
    assert "Dashboard" in reached[-1], reached
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{base}/")

    context.close()
    watch.check()


def _assert_focus_visible(page: Page) -> None:
    style = page.evaluate(
        """() => { const s = getComputedStyle(document.activeElement);
                   return {outline: s.outlineStyle + ' ' + s.outlineWidth, shadow: s.boxShadow}; }"""
    )
    assert not style["outline"].startswith("none") or style["shadow"] != "none", style


# Text colour against the nearest opaque background; WCAG 2 AA: 4.5:1, 3:1 for large text.
CONTRAST_PROBLEMS_JS = """() => {
  const parse = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const channel = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
  const lum = ([r, g, b]) => 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const c = parse(getComputedStyle(el).backgroundColor);
      if (c.length === 3 || c[3] > 0.9) return c;
    }
    return [255, 255, 255];
  };
  const problems = [];
  for (const el of document.querySelectorAll('body *')) {
    const text = [...el.childNodes].filter((n) => n.nodeType === 3).map((n) => n.textContent.trim()).join('');
    if (!text || !el.checkVisibility({visibilityProperty: true, opacityProperty: true})) continue;
    const s = getComputedStyle(el);
    const [a, b] = [lum(parse(s.color)), lum(background(el))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const size = parseFloat(s.fontSize);
    const needed = size >= 24 || (parseInt(s.fontWeight, 10) >= 700 && size >= 18.66) ? 3 : 4.5;
    if (ratio < needed) problems.push(`${el.tagName}.${el.className} "${text.slice(0, 30)}" ${ratio.toFixed(2)}`);
  }
  return problems;
}"""


OVERFLOWING_JS = """() => [...document.querySelectorAll('body *')]
  .filter((el) => el.getBoundingClientRect().right > document.documentElement.clientWidth + 1
    && ![...el.children].some((c) => c.getBoundingClientRect().right > document.documentElement.clientWidth + 1))
  .slice(0, 5).map((el) => `${el.tagName.toLowerCase()}.${el.className}`)"""


def _look(page: Page, name: str, viewport: dict[str, int]) -> None:
    """Screenshot, and check what a screenshot cannot prove: no sideways scroll, readable contrast."""
    page.wait_for_load_state("load")
    _screenshot(page, name, viewport)
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    if overflow > 0:
        culprits = page.evaluate(OVERFLOWING_JS)
        pytest.fail(f"{name} scrolls sideways by {overflow}px at {viewport['width']}px: {culprits}")
    assert page.evaluate(CONTRAST_PROBLEMS_JS) == [], name


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE, TABLET], ids=["laptop", "phone", "tablet"])
def test_screens_on_laptop_and_phone(live_server, browser, watch, viewport):
    # Given a workspace with a team, keys and some history
    base = live_server.url
    workspace = factories.WorkspaceFactory(name="Northwind Outfitters")
    owner = factories.member(workspace, role="owner", user=factories.UserFactory(email="owner@northwind.example"))
    factories.member(workspace, role="admin", user=factories.UserFactory(email="lena.fischer@northwind.example"))
    factories.member(workspace, role="member", user=factories.UserFactory(email="sam.okafor@northwind.example"))
    factories.member(workspace, role="viewer", user=factories.UserFactory(email="finance@northwind.example"))
    with workspace_scope(workspace):
        services.api_key_create(workspace=workspace, name="Warehouse sync", actor=owner)
        revoked, _ = services.api_key_create(workspace=workspace, name="Old CRM export", actor=owner)
        services.api_key_revoke(workspace=workspace, key=revoked, actor=owner)
        services.invitation_create(
            workspace=workspace, email="marketing@agency.example", role="member", actor=owner, accept_url_base=base
        )
    context = _new_context(browser, watch, viewport)
    page = context.new_page()

    # Then every screen is readable and fits
    page.goto(f"{base}/login/")
    _look(page, "login", viewport)
    page.goto(f"{base}/signup/")
    _look(page, "signup", viewport)
    page.get_by_label("Work email").fill("not-an-email")
    page.get_by_role("button", name="Create workspace").click()
    email = page.get_by_label("Work email")
    expect(email).to_be_focused()
    expect(email).to_have_attribute("aria-invalid", "true")
    expect(email).to_have_accessible_description("Enter a valid email address.")
    password = page.get_by_label("Password", exact=True)
    expect(password).to_have_accessible_description(re.compile("^At least 8 characters.* This field is required.$"))
    _look(page, "signup-errors", viewport)

    _log_in(page, base, owner.email, PASSWORD)
    _look(page, "dashboard", viewport)

    if viewport is PHONE:
        # The navigation folds behind a button; it opens, takes focus, and Escape closes it.
        nav_link = page.get_by_role("navigation", name="Main").get_by_role("link", name="Segments")
        toggle = page.get_by_role("button", name="Menu")
        expect(nav_link).to_be_hidden()
        expect(toggle).to_have_attribute("aria-expanded", "false")
        toggle.click()
        expect(toggle).to_have_attribute("aria-expanded", "true")
        expect(nav_link).to_be_in_viewport()
        expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Dashboard")).to_be_focused()
        expect(page.get_by_role("button", name="Log out")).to_be_visible()
        page.wait_for_timeout(300)  # let the slide-in finish before the picture
        _screenshot(page, "nav-open", viewport, full_page=False)
        page.keyboard.press("Escape")
        expect(toggle).to_have_attribute("aria-expanded", "false")
        expect(toggle).to_be_focused()
        expect(nav_link).to_be_hidden()

    _settings_tab(page, "Workspace")
    _look(page, "settings-workspace", viewport)
    _settings_tab(page, "Members")
    _look(page, "members", viewport)
    _settings_tab(page, "Invitations")
    page.get_by_label("Email").fill("ops@northwind.example")
    page.get_by_role("button", name="Create invitation").click()
    expect(page.get_by_label("Invitation link")).to_be_visible()
    _look(page, "invitations", viewport)
    _settings_tab(page, "API keys")
    page.get_by_label("Key name").fill("Reporting")
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_label("New API key")).to_be_visible()
    _look(page, "api-keys", viewport)
    _settings_tab(page, "Write key")
    _look(page, "write-key", viewport)
    _settings_tab(page, "Audit log")
    _look(page, "audit-log", viewport)
    _main_nav(page, "Campaigns")
    expect(page.get_by_role("heading", name="Send your first campaign")).to_be_visible()
    _look(page, "campaigns-empty", viewport)
    response = page.goto(f"{base}/no-such-page/")
    assert response is not None
    assert response.status == 404
    _look(page, "404", viewport)

    context.close()
    watch.check()
