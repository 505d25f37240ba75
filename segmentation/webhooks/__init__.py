"""Webhooks: segment entries and exits POSTed, signed, to the workspace's endpoints.

- ``services.deliveries_from_changes``, a consumer of the change feed
  (``segmentation.feed``), records one delivery per (subscription, membership
  change), in the transaction that moves its cursor, and enqueues the sends.
- ``tasks.webhook_deliver`` claims and sends deliveries; failures are retried on
  ``signing.RETRY_SCHEDULE`` by ``tasks.webhooks_sweep``, which also picks up
  deliveries whose enqueue failed (broker down) or whose worker died.
- ``transport`` refuses private, loopback and link-local targets when a
  subscription is saved and again after DNS resolution at send time, and
  connects to the very address it checked.
"""
