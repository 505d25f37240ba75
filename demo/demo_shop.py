"""Generated shop behaviour for the demo workspace: Segment messages, nothing else.

Pure and deterministic: the same ``seed``, ``people``, ``days`` and ``now``
give the same messages in the same order (one ``random.Random(seed)``, ids
drawn from it, message ids numbered). ``seed_demo`` feeds them through the
ingestion path that real traffic uses.

Each person follows one archetype, so the demo has something to segment:
loyal buyers, browsers, cart abandoners, lapsed customers, new sign-ups and
email engagers.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

ARCHETYPES = (
    # (name, share of people)
    ("loyal_buyer", 0.14),
    ("browser", 0.26),
    ("cart_abandoner", 0.16),
    ("lapsed_customer", 0.14),
    ("new_signup", 0.14),
    ("email_engager", 0.16),
)

PLANS = (("Free", 0.62), ("Pro", 0.27), ("Enterprise", 0.08), ("Strategic", 0.03))
COUNTRIES = (
    ("US", 0.30),
    ("GB", 0.12),
    ("DE", 0.11),
    ("FR", 0.09),
    ("CA", 0.07),
    ("NL", 0.05),
    ("ES", 0.05),
    ("IT", 0.05),
    ("AU", 0.05),
    ("SE", 0.04),
    ("BR", 0.04),
    ("JP", 0.03),
)
FIRST_NAMES = [
    "Ada",
    "Alex",
    "Amara",
    "Ana",
    "Ben",
    "Camille",
    "Chloe",
    "Daniel",
    "David",
    "Elena",
    "Emma",
    "Eva",
    "Felix",
    "Grace",
    "Hana",
    "Hugo",
    "Ines",
    "Isaac",
    "Jade",
    "James",
    "Julia",
    "Kai",
    "Leo",
    "Lena",
    "Liam",
    "Lucas",
    "Maya",
    "Mia",
    "Noah",
    "Nora",
    "Olivia",
    "Omar",
    "Priya",
    "Rafael",
    "Sara",
    "Sofia",
    "Tom",
    "Yara",
    "Yusuf",
    "Zoe",
]
LAST_NAMES = [
    "Andersen",
    "Baker",
    "Costa",
    "Dubois",
    "Evans",
    "Fischer",
    "Garcia",
    "Hansen",
    "Ito",
    "Jensen",
    "Kowalski",
    "Lopez",
    "Martin",
    "Meyer",
    "Nakamura",
    "Novak",
    "Okafor",
    "Patel",
    "Rossi",
    "Schmidt",
    "Silva",
    "Smith",
    "Tanaka",
    "Taylor",
    "Weber",
    "Wilson",
    "Young",
    "Zhang",
]
EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com")

CATEGORIES = {
    "handbags": (45, 420),
    "shoes": (35, 260),
    "jackets": (60, 380),
    "accessories": (9, 90),
    "jewellery": (20, 650),
    "home": (12, 180),
}
PRODUCTS = [
    (f"{category[:3].upper()}-{index:03d}", f"{category.title()} {name}", category)
    for category in CATEGORIES
    for index, name in enumerate(("Classic", "Studio", "Weekend", "Atelier", "Essential", "Limited"), start=1)
]

# Where first visits come from: (utm source, medium, campaign, referrer). None means direct.
ACQUISITION = (
    (None, None, None, None, 0.22),
    (None, None, None, "https://www.google.com/search", 0.24),
    ("google", "cpc", "spring_sale", "https://www.google.com/", 0.12),
    ("facebook", "social", "lookalike_q2", "https://l.facebook.com/", 0.08),
    ("instagram", "social", "new_arrivals", "https://l.instagram.com/", 0.08),
    ("newsletter", "email", "weekly_digest", None, 0.10),
    (None, None, None, "https://www.bing.com/search", 0.04),
    ("partner", "affiliate", "blog_review", "https://blog.example.net/best-handbags", 0.07),
    (None, None, None, "https://news.ycombinator.com/", 0.05),
)
PAGES = ("/", "/new", "/sale", "/about", "/collections/bestsellers", "/help/shipping")
EMAIL_CAMPAIGNS = ("weekly_digest", "back_in_stock", "spring_sale", "loyalty_rewards", "abandoned_cart")
SITE = "https://shop.example.com"


@dataclass(frozen=True)
class DemoPerson:
    index: int
    archetype: str
    anonymous_id: str
    user_id: str | None
    traits: dict[str, Any]


def _pick(rng: random.Random, weighted: tuple[tuple[Any, float], ...]) -> Any:
    roll = rng.random()
    total = 0.0
    for value, weight in weighted:
        total += weight
        if roll < total:
            return value
    return weighted[-1][0]


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _PersonStream:
    """Messages of one person, in time order, with numbered message ids."""

    def __init__(self, rng: random.Random, person: DemoPerson, seed: int, latest: datetime) -> None:
        self.rng = rng
        self.latest = latest
        self.person = person
        self.seed = seed
        self.messages: list[dict[str, Any]] = []
        self.identified = False
        self.seen_first_page = False

    def _base(self, kind: str, at: datetime) -> dict[str, Any]:
        message: dict[str, Any] = {
            "type": kind,
            "messageId": f"demo-{self.seed}-{self.person.index}-{len(self.messages)}",
            "timestamp": _iso(min(at, self.latest)),
            "anonymousId": self.person.anonymous_id,
        }
        if self.identified and self.person.user_id is not None:
            message["userId"] = self.person.user_id
        return message

    def page(self, at: datetime, path: str, *, first: bool = False) -> None:
        message = self._base("page", at)
        url = f"{SITE}{path}"
        properties: dict[str, Any] = {"path": path, "url": url, "title": f"Shop · {path.strip('/') or 'Home'}"}
        if first:
            source, medium, campaign, referrer, _ = _pick(self.rng, tuple((row, row[4]) for row in ACQUISITION))
            if source is not None:
                query = f"?utm_source={source}&utm_medium={medium}&utm_campaign={campaign}"
                properties["url"] = f"{url}{query}"
                properties["search"] = query
            if referrer is not None:
                properties["referrer"] = referrer
        message["name"] = properties["title"]
        message["properties"] = properties
        self.messages.append(message)

    def track(self, at: datetime, event: str, properties: dict[str, Any] | None = None) -> None:
        message = self._base("track", at)
        message["event"] = event
        message["properties"] = properties or {}
        self.messages.append(message)

    def identify(self, at: datetime, traits: dict[str, Any]) -> None:
        if self.person.user_id is None:
            return
        self.identified = True
        message = self._base("identify", at)
        message["traits"] = traits
        self.messages.append(message)


class DemoShop:
    """Generates ``people`` people over the ``days`` before ``now``."""

    def __init__(self, *, people: int, days: int, seed: int, now: datetime) -> None:
        if people < 0 or days < 1:
            raise ValueError("people must be >= 0 and days >= 1")
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        self.people = people
        self.days = days
        self.seed = seed
        self.now = now
        self.rng = random.Random(seed)

    def _person(self, index: int) -> DemoPerson:
        rng = self.rng
        archetype = _pick(rng, ARCHETYPES)
        anonymous_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        # Most browsers never sign in; everyone else does at some point.
        identified = archetype != "browser" or rng.random() < 0.2
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        plan = "Free" if archetype in ("browser", "new_signup") and rng.random() < 0.8 else _pick(rng, PLANS)
        traits: dict[str, Any] = {
            "email": f"{first.lower()}.{last.lower()}{index}@{rng.choice(EMAIL_DOMAINS)}",
            "name": f"{first} {last}",
            "first_name": first,
            "plan": plan,
            "country": _pick(rng, COUNTRIES),
            "newsletter": archetype == "email_engager" or rng.random() < 0.4,
        }
        return DemoPerson(
            index=index,
            archetype=archetype,
            anonymous_id=anonymous_id,
            user_id=f"user-{self.seed}-{index:06d}" if identified else None,
            traits=traits,
        )

    def _window(self, archetype: str) -> tuple[float, float]:
        """When the person is active, as (first, last) days before now."""
        days = self.days
        if archetype == "new_signup":
            return min(days, 14) * self.rng.uniform(0.1, 1.0), 0.0
        if archetype == "lapsed_customer":
            # Silent for at least a month where the history allows: some stopped 30-60 days ago
            # ("Stopped using"), others before the last 90 days ("Lapsed customers").
            start = days * self.rng.uniform(0.75, 1.0)
            return start, max(min(31.0, start / 2), start * self.rng.uniform(0.2, 0.7))
        return days * self.rng.uniform(0.5, 1.0), 0.0

    def _sessions(self, archetype: str) -> int:
        rng = self.rng
        scale = max(1.0, self.days / 30)
        base = {
            "loyal_buyer": (6, 12),
            "browser": (2, 6),
            "cart_abandoner": (2, 5),
            "lapsed_customer": (3, 6),
            "new_signup": (1, 3),
            "email_engager": (2, 5),
        }[archetype]
        if archetype in ("new_signup", "lapsed_customer"):
            return rng.randint(*base)
        return max(1, round(rng.randint(*base) * scale / 2))

    def _session(self, stream: _PersonStream, at: datetime, number: int) -> None:
        rng = self.rng
        person = stream.person
        archetype = person.archetype
        step = timedelta(seconds=rng.randint(20, 140))
        stream.page(at, rng.choice(PAGES) if number else "/", first=number == 0)
        at += step

        if person.user_id is not None:
            if number == 0 and archetype in ("new_signup", "loyal_buyer", "email_engager") and not stream.identified:
                stream.track(at, "Signed Up", {"method": rng.choice(("email", "google", "apple"))})
                stream.identified = True
                stream.identify(at, person.traits)
                at += step
            elif number > 0 or archetype != "browser":
                if not stream.identified:
                    stream.identify(at, person.traits)
                stream.track(at, "Login", {"method": rng.choice(("password", "password", "magic_link"))})
                at += step

        browse = {"loyal_buyer": 3, "browser": 5, "cart_abandoner": 4, "new_signup": 3}.get(archetype, 2)
        viewed = []
        for _ in range(rng.randint(1, browse)):
            product_id, name, category = rng.choice(PRODUCTS)
            low, high = CATEGORIES[category]
            price = round(rng.uniform(low, high), 2)
            viewed.append((product_id, name, category, price))
            stream.page(at, f"/products/{product_id.lower()}")
            stream.track(
                at + timedelta(seconds=1),
                "Product Viewed",
                {"product_id": product_id, "name": name, "category": category, "price": price},
            )
            at += step

        add_chance = {"loyal_buyer": 0.8, "cart_abandoner": 0.9, "lapsed_customer": 0.6, "new_signup": 0.5}.get(
            archetype, 0.12
        )
        if rng.random() >= add_chance:
            return
        cart = rng.sample(viewed, k=rng.randint(1, len(viewed)))
        for product_id, name, category, price in cart:
            quantity = rng.choice((1, 1, 1, 2))
            stream.track(
                at,
                "Product Added",
                {"product_id": product_id, "name": name, "category": category, "price": price, "quantity": quantity},
            )
            at += step
        buy_chance = {"loyal_buyer": 0.85, "cart_abandoner": 0.04, "lapsed_customer": 0.7, "new_signup": 0.35}.get(
            archetype, 0.3
        )
        if person.user_id is None or rng.random() >= buy_chance:
            return
        stream.page(at, "/checkout")
        at += step
        revenue = round(sum(price for *_, price in cart), 2)
        stream.track(
            at,
            "Order Completed",
            {
                "order_id": f"ORD-{self.seed}-{person.index}-{number}",
                "revenue": revenue,
                "items": len(cart),
                "currency": "USD",
                "categories": sorted({category for _, _, category, _ in cart}),
            },
        )

    def _emails(self, stream: _PersonStream, first_day: float, last_day: float) -> None:
        rng = self.rng
        archetype = stream.person.archetype
        if stream.person.user_id is None or not stream.identified:
            return
        opens = {"email_engager": (4, 10), "loyal_buyer": (1, 4), "lapsed_customer": (0, 2)}.get(archetype, (0, 1))
        # Opens per 45 days of the person's activity: a longer history does not thin out the readers.
        per_span = max(1.0, (first_day - last_day) / 45)
        for _ in range(round(rng.randint(*opens) * per_span)):
            at = self.now - timedelta(days=rng.uniform(last_day, first_day))
            campaign = rng.choice(EMAIL_CAMPAIGNS)
            stream.track(at, "Email Opened", {"campaign": campaign, "subject": campaign.replace("_", " ").title()})
            if rng.random() < (0.55 if archetype == "email_engager" else 0.25):
                stream.track(
                    at + timedelta(minutes=rng.randint(1, 90)),
                    "Email Clicked",
                    {"campaign": campaign, "url": f"{SITE}/{campaign.replace('_', '-')}"},
                )

    def person_messages(self, person: DemoPerson) -> list[dict[str, Any]]:
        stream = _PersonStream(self.rng, person, self.seed, latest=self.now - timedelta(seconds=1))
        first_day, last_day = self._window(person.archetype)
        count = self._sessions(person.archetype)
        offsets = sorted((self.rng.uniform(last_day, first_day) for _ in range(count)), reverse=True)
        if last_day and offsets:
            offsets[-1] = last_day  # a lapsed customer's last visit is when they lapsed
        for number, days_ago in enumerate(offsets):
            at = self.now - timedelta(days=days_ago)
            # Sessions near "now" must still end in the past.
            at = min(at, self.now - timedelta(hours=2))
            self._session(stream, at, number)
        # Emails go to people who signed up: after their first visit.
        self._emails(stream, offsets[0] if offsets else first_day, last_day)
        if stream.identified and self.rng.random() < 0.1:
            # A plan change later on: identify again, the last write wins.
            upgraded = {**person.traits, "plan": _pick(self.rng, PLANS)}
            stream.identify(self.now - timedelta(days=last_day + 0.01), upgraded)
        stream.messages.sort(key=lambda message: message["timestamp"])
        return stream.messages

    def people_iter(self) -> Iterator[tuple[DemoPerson, list[dict[str, Any]]]]:
        for index in range(self.people):
            person = self._person(index)
            yield person, self.person_messages(person)

    def messages(self) -> Iterator[dict[str, Any]]:
        for _, messages in self.people_iter():
            yield from messages
