"""Polymarket's own known failures, as fault switches of the simulator (`POST /_sim/faults`, or
`PolymarketSimulator.apply_faults` in tests), each from the venue's documents or from reports of
the real venue doing it:

- `too_early`: n. The next n order requests (`POST /order`, `POST /orders`, `DELETE /order`,
  `DELETE /orders`, `DELETE /cancel-all`, `DELETE /cancel-market-orders`) are answered HTTP 425,
  as while the matching engine restarts (docs.polymarket.com/trading/matching-engine: "During a
  restart window, the CLOB API returns HTTP 425 (Too Early) on all order-related endpoints ...
  Wait and retry with exponential backoff"). The docs give no body for it: the simulator sends
  the venue's usual error object, `{"error": "Too Early"}` [U: the words are the status's]. Such a
  request is not processed: nothing is placed nor cancelled.
- `trading`: "disabled" | "cancel_only" | "normal". HTTP 503 with the venue's documented bodies
  (docs.polymarket.com/resources/error-codes, "Global Errors ... can occur on any authenticated
  endpoint"): disabled, every authenticated request (L2 headers) and every order request,
  cancels included, gets `{"error": "Trading is currently disabled. Check polymarket.com for
  updates"}` ("No orders (including cancels) are accepted"); cancel-only, new orders get
  `{"error": "Trading is currently cancel-only. New orders are not accepted, but cancels are
  allowed."}` and cancels go through. It lasts until switched back to "normal".
- `cloudflare`: n. The next n REST requests, whatever their path, are answered by Cloudflare's
  firewall: HTTP 403 with its HTML block page (`Attention Required! | Cloudflare`, "Sorry, you
  have been blocked", a Ray ID), `content-type: text/html`, never JSON, as users of the official
  clients quote it for `POST /order` (py-clob-client #101, #143, #262) and `POST /auth/api-key`
  (py-clob-client-v2 #38, #41). The request never reaches the CLOB: nothing is done.
- `bad_gateway`: n. The next n order requests are answered by Cloudflare with HTTP 502 and its
  HTML error page ("502: Bad gateway", a Ray ID) without reaching the CLOB: nothing is placed
  nor cancelled. The client cannot tell that from a page sent after the CLOB took the order
  (a 524 timeout), so for it the outcome is unknown until it asks the venue.
- `silent`: true | false, or `silent_s`: seconds. The market channel keeps its connections open
  and answers `PING` with `PONG`, but sends nothing else: no books for a subscription, no
  changes, no trades ("the server accepts new TCP connections and subscription messages but never
  sends book data back. The connection remains OPEN, application-level PING/PONG works, but zero
  `book` or `price_change` events are delivered. This can persist for hours", py-clob-client
  #292). What the market does meanwhile is lost to those connections, as it is to the venue's.

The simulator asks `intercept` first for every HTTP request (it answers the refused ones itself,
with their own content type) and `mutes` for every frame it sends.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

import attrs
import orjson
import structlog
import trio

__all__ = ["BAD_GATEWAY_PAGE", "CLOUDFLARE_BLOCK_PAGE", "ORDER_REQUESTS", "VenueFaults"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

# The requests that reach the matching engine: placing and cancelling (§2.3).
ORDER_REQUESTS: Final = frozenset(
    {
        ("POST", "/order"),
        ("POST", "/orders"),
        ("DELETE", "/order"),
        ("DELETE", "/orders"),
        ("DELETE", "/cancel-all"),
        ("DELETE", "/cancel-market-orders"),
    }
)
_CANCELS: Final = frozenset(r for r in ORDER_REQUESTS if r[0] == "DELETE")
_TOO_EARLY: Final = {"error": "Too Early"}
_DISABLED: Final = {"error": "Trading is currently disabled. Check polymarket.com for updates"}
_CANCEL_ONLY: Final = {
    "error": "Trading is currently cancel-only. New orders are not accepted, but cancels are allowed."
}
_TRADING_MODES: Final = ("normal", "disabled", "cancel_only")

# Cloudflare's block page, shortened to its telling parts, as the reports above quote it (its
# head and title, the headline, and the footer with the Ray ID).
CLOUDFLARE_BLOCK_PAGE: Final = b"""<!DOCTYPE html>
<!--[if lt IE 7]> <html class="no-js ie6 oldie" lang="en-US"> <![endif]-->
<!--[if gt IE 8]><!--> <html class="no-js" lang="en-US"> <!--<![endif]-->
<head>
<title>Attention Required! | Cloudflare</title>
<meta charset="UTF-8" />
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
<meta name="robots" content="noindex, nofollow" />
<link rel="stylesheet" id="cf_styles-css" href="/cdn-cgi/styles/cf.errors.css" />
</head>
<body>
  <div id="cf-wrapper">
    <div id="cf-error-details" class="cf-error-details-wrapper">
      <div class="cf-wrapper cf-header cf-error-overview">
        <h1 data-translate="block_headline">Sorry, you have been blocked</h1>
        <h2 class="cf-subheadline">
          <span data-translate="unable_to_access">You are unable to access</span> polymarket.com
        </h2>
      </div>
    </div>
    <div class="cf-error-footer cf-wrapper">
      <p class="text-13">
        <span class="cf-footer-item sm:block sm:mb-1">Cloudflare Ray ID:
          <strong class="font-semibold">9caa18691bbf0358</strong></span>
      </p>
    </div>
  </div>
</body>
</html>
"""


# Cloudflare's 502 page, shortened the same way: the origin (the CLOB) was not reached.
BAD_GATEWAY_PAGE: Final = b"""<!DOCTYPE html>
<html lang="en-US">
<head>
<title>clob.polymarket.com | 502: Bad gateway</title>
<meta charset="UTF-8" />
</head>
<body>
  <div id="cf-error-details">
    <h1><span class="inline-block">Bad gateway</span> <span class="code-label">Error code 502</span></h1>
    <p>The web server reported a bad gateway error.</p>
    <span class="cf-footer-item">Cloudflare Ray ID: <strong>9caa1869aa1f0359</strong></span>
  </div>
</body>
</html>
"""


@attrs.define
class VenueFaults:
    """The switches above, and what the simulator asks of them."""

    log: structlog.typing.FilteringBoundLogger
    too_early: int = 0  # the next n order requests get 425
    trading: str = "normal"  # "normal" | "disabled" | "cancel_only"
    cloudflare: int = 0  # the next n REST requests get Cloudflare's 403 page
    bad_gateway: int = 0  # the next n order requests get Cloudflare's 502 page, unprocessed
    silent_until: float = 0.0  # trio time; inf: until switched off
    refused: int = 0  # requests answered by these switches

    def apply(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Switch on (or off) what `spec` names; returns what was applied. Raises ValueError
        for terms it cannot apply, before applying any of them."""
        mode = spec.get("trading")
        if mode is not None and mode not in _TRADING_MODES:
            raise ValueError(f"trading: expected one of {', '.join(_TRADING_MODES)}, got {mode!r}")
        silent_s = spec.get("silent_s")
        if silent_s is not None and not 0 <= float(silent_s) < float("inf"):
            raise ValueError(f"silent_s: expected seconds >= 0, got {silent_s!r}")
        counts = {k: int(spec.get(k) or 0) for k in ("too_early", "cloudflare", "bad_gateway")}
        if any(n < 0 for n in counts.values()):
            raise ValueError(f"too_early / cloudflare / bad_gateway: expected counts >= 0, got {counts}")
        applied: dict[str, Any] = {}
        if counts["too_early"]:
            self.too_early += counts["too_early"]
            applied["too_early"] = self.too_early
        if counts["cloudflare"]:
            self.cloudflare += counts["cloudflare"]
            applied["cloudflare"] = self.cloudflare
        if counts["bad_gateway"]:
            self.bad_gateway += counts["bad_gateway"]
            applied["bad_gateway"] = self.bad_gateway
        if mode is not None:
            self.trading = str(mode)
            applied["trading"] = self.trading
        if "silent" in spec:
            self.silent_until = float("inf") if spec["silent"] else 0.0
            applied["silent"] = bool(spec["silent"])
        if silent_s is not None:
            self.silent_until = trio.current_time() + float(silent_s)
            applied["silent_s"] = float(silent_s)
        return applied

    @property
    def silent(self) -> bool:
        return self.silent_until > 0 and trio.current_time() < self.silent_until

    def mutes(self, path: str, frame: bytes) -> bool:
        """Whether a frame to a peer on `path` is held back by the `silent` switch: everything
        of the market channel but `PONG`."""
        return path == "/ws/market" and frame != b"PONG" and self.silent

    def refusal(
        self, method: str, path: str, *, authenticated: bool = False
    ) -> tuple[int, bytes, bytes] | None:
        """(status, content type, body) of a request these switches refuse, consuming the
        switch; None for a request they let through. `authenticated`: it carries L2 headers."""
        if self.cloudflare > 0:
            self.cloudflare -= 1
            return 403, b"text/html; charset=UTF-8", CLOUDFLARE_BLOCK_PAGE
        request = (method, path)
        if self.trading == "disabled" and (authenticated or request in ORDER_REQUESTS):
            return 503, b"application/json", orjson.dumps(_DISABLED)
        if request not in ORDER_REQUESTS:
            return None
        if self.bad_gateway > 0:
            self.bad_gateway -= 1
            return 502, b"text/html; charset=UTF-8", BAD_GATEWAY_PAGE
        if self.too_early > 0:
            self.too_early -= 1
            return 425, b"application/json", orjson.dumps(_TOO_EARLY)
        if self.trading == "cancel_only" and request not in _CANCELS:
            return 503, b"application/json", orjson.dumps(_CANCEL_ONLY)
        return None

    async def intercept(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Answer an HTTP request these switches refuse (True), or leave it alone (False, having
        read nothing of it)."""
        method, path = str(scope.get("method", "")), str(scope.get("path", ""))
        if path.startswith(("/_sim/", "/gamma/")) or path == "/gamma":
            return False  # the test switches themselves, and the catalog API, are not the CLOB
        authenticated = any(name.lower() == b"poly_api_key" for name, _ in scope.get("headers") or ())
        answer = self.refusal(method, path, authenticated=authenticated)
        if answer is None:
            return False
        status, content_type, body = answer
        while (await receive()).get("more_body"):
            pass  # the request's body, unread: the venue did not process it
        self.refused += 1
        self.log.info("simulator.venue_fault", method=method, path=path, status=status)
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", content_type)]}
        )
        await send({"type": "http.response.body", "body": body})
        return True
