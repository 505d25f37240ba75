"""Plumbing every app uses and that knows no app: the REST base and error pages, client
addresses and rate limits, the SSRF-safe outgoing HTTP transport and its signing, and
the embedded services of the quickstart. It imports no app of the product."""
