"""pushhub: a real-time push hub.

Events are published over HTTP, appended to a per-channel log (offset + epoch), fanned out live to
WebSocket and Server-Sent Events clients who resume exactly where they stopped, and forwarded to
webhook subscribers.
"""

__version__ = "0.1.0"
