import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# The tracking endpoints (/v1/batch, /v1/track, ...) skip the site's middleware and
# share transactions between concurrent requests; everything else is plain Django.
django_application = get_asgi_application()

from tracking.ingest_asgi import IngestASGI  # noqa: E402  (needs the app registry ready)

application = IngestASGI(django_application)
