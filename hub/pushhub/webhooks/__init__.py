"""Outgoing webhooks: events appended to the log are delivered, signed, to registered HTTP endpoints.

The data flow reads in the modules:

``endpoints``  what a subscriber registered (validated; bad definitions are 422s)
``store``      durable state: endpoints, per-channel cursors over the log, deliveries, attempts
``dispatcher`` tails the log into deliveries, then one worker per endpoint sends them
``message``    the request body of one attempt (pure)
``signing``    Standard Webhooks and the simpler hex signature (pure)
``retry``      retry schedule, outcome of a response, circuit breaker (pure)
``ratelimit``  a token bucket (pure)
``ssrf``       which addresses a delivery may reach, checked at connect time
``clock``      the time source, injected so tests run a day-long schedule in seconds
``api``        the ``/v1/webhooks/...`` HTTP routes
``cli``        ``pushhub endpoints|deliveries|attempts``
``errors``     the errors this package raises
"""
