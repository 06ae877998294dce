"""Which requests the server answers: only its own page's, and scripts run here.

A web page on another site can make the browser send requests to a local server: by
DNS rebinding (a name of its own that resolves to 127.0.0.1), or by posting straight
to ``http://127.0.0.1:8000/api/predict`` (a "simple" request needs no CORS pre-flight:
the page cannot read the answer, but the server would still do the work). So:

- ``Host`` must be a loopback name when the server listens on a loopback address;
- ``Origin``, which browsers send with every cross-origin request and with every
  POST, must be the server's own origin (``http://`` + the ``Host`` asked for);
- ``Sec-Fetch-Site``, which browsers send with every request, must not say
  ``cross-site`` or ``same-site`` (another port of localhost is the same *site*),
  except for following a link to a page (a top-level ``GET`` navigation).

Clients that are not browsers (curl, scripts) send neither ``Origin`` nor
``Sec-Fetch-Site`` and are answered.
"""

from __future__ import annotations

from email.message import Message
from urllib.parse import urlsplit

_OTHER_SITES = {"cross-site", "same-site"}


def refusal(
    method: str, headers: Message, allowed_hosts: set[str] | None
) -> str | None:
    """Why the request must be refused with 403, or None to answer it.

    ``allowed_hosts`` : host names accepted in ``Host`` (None: any).
    """
    host = headers.get("Host", "")
    if allowed_hosts is not None and _split_host(host)[0] not in allowed_hosts:
        return f"host {host[:100]!r} not allowed (local server)"
    origin = headers.get("Origin")
    if origin is not None and not _same_origin(origin, host):
        return f"requests from other web pages are refused (Origin {origin[:100]!r})"
    site = (headers.get("Sec-Fetch-Site") or "").strip().lower()
    navigation = (headers.get("Sec-Fetch-Mode") or "").strip().lower() == "navigate"
    if site in _OTHER_SITES and not (method in ("GET", "HEAD") and navigation):
        return f"requests from other web pages are refused (Sec-Fetch-Site {site})"
    return None


def _split_host(host: str) -> tuple[str, int]:
    """``"localhost:8000"`` -> ``("localhost", 8000)``; port 80 when none is given.
    An unparsable value gives ``("", -1)``, which matches nothing."""
    try:
        url = urlsplit(f"http://{host.strip()}")
        return (url.hostname or "", url.port or 80)
    except ValueError:  # a bad port or bracket
        return ("", -1)


def _same_origin(origin: str, host: str) -> bool:
    """``Origin`` names this server as the ``Host`` header does (scheme http)."""
    try:
        url = urlsplit(origin.strip())
        theirs = (url.scheme.lower(), url.hostname or "", url.port or 80)
    except ValueError:
        return False
    name, port = _split_host(host)
    return bool(name) and theirs == ("http", name, port)
