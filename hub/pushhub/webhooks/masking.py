"""The request headers an attempt record keeps, as sent but with secrets masked (pure).

Signature values are masked to their scheme (``v1,…``): the signature is a MAC of the body with the
endpoint's secret, and kept next to the body it would let anyone check guesses of the secret
against. An endpoint's own headers whose name suggests a credential (``authorization``, ``cookie``,
anything with ``token``, ``secret``, ``key``, ``auth``, ``password`` or ``signature`` in it) keep
only their first characters. The masked form of an endpoint's own headers is computed once per
endpoint configuration (:func:`endpoint_headers`), so an attempt only adds its own few headers.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

MASK = "…"
SECRET_WORDS = ("authorization", "cookie", "token", "secret", "key", "auth", "password", "signature")
SIGNATURES = frozenset({"webhook-signature", "x-webhook-signature"})
KEPT = 4  # characters of a credential header shown, for telling two credentials apart


def is_secret(name: str) -> bool:
    lower = name.lower()
    return any(word in lower for word in SECRET_WORDS)


def mask(value: str) -> str:
    return value[:KEPT] + MASK if len(value) > 2 * KEPT else MASK


def mask_signatures(value: str) -> str:
    """``v1,abc… v1,def…`` → ``v1,… v1,…``; an unversioned (hex) signature → ``…``."""
    return " ".join(part.partition(",")[0] + "," + MASK if "," in part else MASK for part in value.split(" "))


@functools.lru_cache(maxsize=1024)
def endpoint_headers(headers: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """An endpoint's own headers, masked (cached: callers must not change the dict)."""
    return {name: mask(value) if is_secret(name) else value for name, value in headers}


def masked(endpoint: tuple[tuple[str, str], ...], sent: Mapping[str, str]) -> dict[str, str]:
    """The headers ``sent`` (the endpoint's own headers ``endpoint``, then the hub's), masked."""
    shown = dict(endpoint_headers(endpoint))
    for name, value in sent.items():
        if name in SIGNATURES:
            shown[name] = mask_signatures(value)
        elif name not in shown:
            shown[name] = value
    return shown
