"""The catalogue of what a workspace's data holds: event names, property keys and their common values.

The segment builder autocompletes from these small tables instead of scanning
events on each keystroke. ``services.catalogue_update`` keeps them current from
the events received since its last watermark (a periodic task, and the end of
``seed_demo`` / ``import_events``); ingestion itself does no extra work.
"""
