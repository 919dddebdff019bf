"""Ingest: outside systems push events into pushhub by webhook.

``POST /v1/ingest/{source}`` → allowlist → size limit → :mod:`.verify` (signature over the raw
bytes, timestamp tolerance) → :mod:`.extract` (delivery id, event type, event draft) → dedupe and
durable append in one step (:meth:`pushhub.hub.Hub.publish_once`) → 2xx. Sources are configured
in a file read by :mod:`.sources`; :mod:`.endpoint` is the only module here that does I/O.
"""
