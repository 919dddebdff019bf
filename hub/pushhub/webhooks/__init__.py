"""Outgoing webhooks: events appended to the log are delivered, signed, to registered HTTP endpoints.

The data flow reads in the modules:

``endpoints``  what a subscriber registered (validated; bad definitions are 422s)
``store``      durable state: endpoints, per-channel cursors over the log, deliveries, attempts
``dispatcher`` wires the sender together; its parts:
``registry``   the endpoints this process sends to, in line with the store
``intake``     turns appended events into deliveries, moving a cursor per channel (the outbox)
``worker``     one per endpoint: takes its due deliveries within its caps and sends each
``attempt``    one attempt: the signed request, the POST, what the reply means for the delivery
``recorder``   writes the attempts that finish together in one transaction
``client``     the outgoing HTTP client (aiohttp: one connection pool per endpoint, the SSRF guard)
``process``    the same client in a child process (``--webhook-sender process``)
``health``     what an outcome does to its endpoint (failing streak, disabling)
``sync``       following other hub processes that share the store
``replay``     sending deliveries again on request
``settings``   the sender's configuration
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
