"""The webhook notifier: alerts posted to Slack, Discord, Telegram or a JSON endpoint, never in
the way of trading.

`AlertNotifier.notify(alert)` is synchronous, O(1), never blocks and never raises: it decides
at once whether the alert goes (deduplication, then the rate limit) and hands it to each
webhook's own bounded trio memory channel (`send_nowait`). A task per webhook (`run`, in the
daemon's nursery) posts what its channel holds, one at a time, with httpx under trio:

- each POST bounded by `timeout_s` as a whole (httpx's own timeouts are per phase);
- one retry, after `retry_backoff_s`, for a 5xx answer or a connection refused; a 429 waits the
  venue's Retry-After (header, or Discord's and Telegram's `retry_after` in the body) up to
  `retry_after_max_s`, beyond that it gives up; a timeout is not retried (the webhook may have
  taken it: a second post would be a duplicate on the phone);
- anything else than a 2xx is a failure, counted (`failed[channel]`) and logged with the
  channel, the webhook's source (`$NAME` or the file) and the HTTP status, never the URL.

The URL is a secret (a Slack or Discord webhook's path, a Telegram bot token): it comes from
the environment or a file, is registered with the log redaction (engine.logs), and is never
written by this module: a connection error's text is scrubbed of it before it is logged.

Counters (read by the metrics): `sent` and `failed` by channel (slack, discord, telegram,
json), `suppressed` by reason: `dedup` (the same kind and subject within `dedup_s`, unless its
recovery or problem in `alert.PAIRED` came in between), `rate` (beyond `max_per_minute`, all
alerts together but the critical ones, which always go; once the rate allows again, one
summary line "N alerts suppressed" goes out; the watcher logs each alert it raises as
`alerts.raised`, so the log has the suppressed ones), `queue_full` (a webhook's channel
full: it is slower than the alerts come; logged once per burst).
"""

from __future__ import annotations

import collections
import email.utils
import math
import re
import socket
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import httpx
import orjson
import structlog
import trio

from ..logs.setup import register_secret
from ..model.errors import SecretUnavailable
from .alert import PAIRED, Alert
from .options import AlertOptions, WebhookFormat, WebhookOptions

__all__ = ["SUPPRESS_REASONS", "AlertNotifier", "webhook_body"]

SUPPRESS_REASONS = ("dedup", "rate", "queue_full")
_RATE_WINDOW_S = 60.0
_MAX_TEXT = 1900  # below Discord's 2,000 characters a message (Telegram: 4,096; Slack: 40,000)
_READ_LIMIT = 1024  # of an answer's body: enough for an error's reason, never a flood in memory
_REDACTED = "[redacted]"
_HEADERS = {"content-type": "application/json"}
_SEVERITY_MARK = {"critical": "CRITICAL", "warning": "warning", "info": "info"}
_TELEGRAM_TOKEN = re.compile(r"/bot([^/?#]+)")


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _MAX_TEXT else line[: _MAX_TEXT - 1] + "…"


def webhook_body(fmt: WebhookFormat, alert: Alert, *, origin: str) -> dict[str, Any]:
    """The JSON body a webhook of format `fmt` is posted: Slack `{"text"}` (&, <, > escaped),
    Discord `{"content"}` (with `allowed_mentions` that parse none), Telegram `{"text"}` (the
    chat in the URL's `chat_id`), each one line saying
    the severity and `origin` (`tradingd@host`) first; `json`: the alert's fields as they are."""
    if fmt == "json":
        return {
            "kind": alert.kind,
            "subject": alert.subject,
            "severity": alert.severity,
            "text": alert.text,
            "ts": alert.ts,
        }
    line = _one_line(f"[{_SEVERITY_MARK[alert.severity]}] {origin}: {alert.text}")
    # The text holds free text (a strategy's failure message, the kill switch's reason): it
    # must ping nobody. Discord parses no mention; Slack's control characters are escaped as
    # its formatting rules say (so `<!channel>` is plain text). Telegram without parse_mode:
    # plain text already.
    if fmt == "discord":
        return {"content": line, "allowed_mentions": {"parse": []}}
    if fmt == "slack":
        line = line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return {"text": line}


class _Endpoint:
    """One webhook at run time: its URL (never in a repr), its bounded channel, its counters'
    label (`channel`) and how people tell it apart (`source`: `$NAME` or the file)."""

    def __init__(self, index: int, hook: WebhookOptions, url: str, queue_size: int) -> None:
        self.index = index
        self.channel: WebhookFormat = hook.format
        self.source = hook.source
        self.url = url
        # Every form the secret may take in a text: the URL, its path and query (a Slack or
        # Discord webhook's id and token), a Telegram bot token; longest first.
        parsed = httpx.URL(url)
        pieces = {url, parsed.raw_path.decode("ascii", "replace")}
        if parsed.password:
            pieces.add(parsed.password)
        pieces.update(_TELEGRAM_TOKEN.findall(url))
        self.secrets = tuple(sorted((p for p in pieces if len(p) >= 6), key=len, reverse=True))
        for piece in self.secrets:
            register_secret(piece)
        self.send, self.receive = trio.open_memory_channel[Alert](queue_size)
        self.dropping = 0  # alerts dropped in the current burst of a full channel

    def scrub(self, text: str) -> str:
        for piece in self.secrets:
            text = text.replace(piece, _REDACTED)
        return text

    def __repr__(self) -> str:
        return f"<webhook {self.index} {self.channel} from {self.source}>"


def _check_url(url: str, hook: WebhookOptions) -> str | None:
    """What is wrong with a webhook's URL, in words that never quote it; None when it is fine."""
    try:
        parsed = httpx.URL(url)
    except Exception:  # httpx's message quotes the URL: it is never passed on
        return "does not hold a URL"
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return "does not hold an http:// or https:// URL"
    if hook.format == "telegram" and "chat_id" not in parsed.params:
        return "holds a Telegram URL without chat_id (https://api.telegram.org/bot<TOKEN>/sendMessage?chat_id=<ID>)"
    return None


def _read_url(hook: WebhookOptions, environ: Mapping[str, str], base_dir: Path) -> tuple[str, str | None]:
    """(the URL, or "" ; the problem, naming the variable or the file but never a value)."""
    if hook.url_env is not None:
        value = environ.get(hook.url_env)
        if value is None:
            return "", f"the environment variable {hook.url_env} is not set"
        url = value.strip()
        if not url:
            return "", f"the environment variable {hook.url_env} is empty"
        problem = _check_url(url, hook)
        return url, None if problem is None else f"the environment variable {hook.url_env} {problem}"
    assert hook.url_file is not None
    path = Path(hook.url_file).expanduser()
    path = path if path.is_absolute() else base_dir / path
    try:
        lines = path.read_text(encoding="utf-8").split()
    except FileNotFoundError:
        return "", f"the file {path} does not exist"
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        return "", f"the file {path} cannot be read ({why})"
    if not lines:
        return "", f"the file {path} is empty"
    if len(lines) > 1:
        return "", f"the file {path} holds more than one word (one URL expected)"
    problem = _check_url(lines[0], hook)
    return lines[0], None if problem is None else f"the file {path} {problem}"


@attrs.frozen
class _Outcome:
    """One POST: delivered, or why not (an HTTP status, or an error without a status)."""

    ok: bool
    status: int | None = None
    error: str | None = None  # "timeout", "connect", or the exception's type
    detail: str | None = None  # scrubbed: the answer's start, the connection error's words
    retry_after_s: float | None = None
    retryable: bool = False


def _retry_after(header: str | None, body: bytes) -> float | None:
    """A 429's wait in seconds: the Retry-After header (seconds or an HTTP date), else the
    `retry_after` Discord and Telegram (`parameters.retry_after`) put in the body; None when
    neither says a finite, non-negative figure."""
    seconds: float | None = None
    if header:
        try:
            seconds = float(header)
        except ValueError:
            try:
                seconds = email.utils.parsedate_to_datetime(header).timestamp() - time.time()
            except (TypeError, ValueError, IndexError):
                seconds = None
    if seconds is None:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            params = data.get("parameters")
            value = data.get("retry_after", params.get("retry_after") if isinstance(params, dict) else None)
            if isinstance(value, int | float) and not isinstance(value, bool):
                seconds = float(value)
    if seconds is None or not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


class AlertNotifier:
    """Posts alerts to the webhooks of `[alerts]` (module docstring). Raises `SecretUnavailable` at
    construction (a `ConfigError`; `tradingd run` exits 78), one line naming every webhook variable
    or file that is missing, empty or not an http(s) URL (never its value). `run` is the task that
    posts; `notify` hands it alerts."""

    retry_backoff_s = 1.0  # before the one retry of a 5xx or a refused connection
    retry_after_max_s = 30.0  # the longest 429 Retry-After honoured; beyond it: give up
    drain_s = 2.0  # at the daemon's stop: the time left to post what is queued (no retries)

    def __init__(
        self,
        options: AlertOptions,
        *,
        environ: Mapping[str, str],
        config_path: Path | None = None,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = trio.current_time,
        wall_clock: Callable[[], int] = time.time_ns,
        origin: str | None = None,
        queue_size: int = 64,
        log: structlog.typing.FilteringBoundLogger | None = None,
    ) -> None:
        self.options = options
        self.log = log or structlog.get_logger("tradingd")
        self.origin = origin or f"tradingd@{socket.gethostname()}"
        base_dir = config_path.parent if config_path is not None else Path.cwd()
        found: list[tuple[int, WebhookOptions, str]] = []
        problems: list[str] = []
        for i, hook in enumerate(options.webhooks):
            url, problem = _read_url(hook, environ, base_dir)
            if problem is None:
                found.append((i, hook, url))
            else:
                key = "url_env" if hook.url_env is not None else "url_file"
                problems.append(f"alerts.webhooks[{i}].{key}: {problem}")
        if problems:
            raise SecretUnavailable(
                "; ".join(problems), file=None if config_path is None else str(config_path)
            ) from None
        self._endpoints = [_Endpoint(i, hook, url, queue_size) for i, hook, url in found]
        self._client = client
        self._clock = clock
        self._wall_clock = wall_clock
        self.sent: dict[str, int] = {ep.channel: 0 for ep in self._endpoints}
        self.failed: dict[str, int] = {ep.channel: 0 for ep in self._endpoints}
        self.suppressed: dict[str, int] = dict.fromkeys(SUPPRESS_REASONS, 0)
        self.errors = 0  # notify() calls that raised inside (logged; the caller never sees it)
        self._last: dict[tuple[str, str], float] = {}  # (kind, subject) -> when it last went
        self._window: collections.deque[float] = collections.deque()  # when alerts went, last 60 s
        self._held = 0  # alerts suppressed by the rate limit since the last summary

    @property
    def channels(self) -> tuple[str, ...]:
        """The configured webhooks' channels (formats), in the config's order."""
        return tuple(ep.channel for ep in self._endpoints)

    # -- the caller's side: synchronous, never blocks, never raises ------------------------------
    def notify(self, alert: Alert) -> None:
        """Hand `alert` over for posting, or count why not (`suppressed`). Never blocks, never
        raises: an internal error is logged and counted (`errors`)."""
        try:
            self._notify(alert)
        except Exception:
            self.errors += 1
            self.log.exception("alerts.notify_failed", kind=alert.kind, subject=alert.subject)

    def _notify(self, alert: Alert) -> None:
        now = self._clock()
        self._summary_if_due(now)
        key = (alert.kind, alert.subject)
        paired = PAIRED.get(alert.kind)
        if paired is not None:
            # A recovery ends its problem's deduplication (and a problem its recovery's): the
            # next transition is news, not a duplicate, however soon it comes.
            self._last.pop((paired, alert.subject), None)
        last = self._last.get(key)
        if last is not None and now - last < self.options.dedup_s:
            self.suppressed["dedup"] += 1
            self.log.debug("alerts.suppressed", reason="dedup", kind=alert.kind, subject=alert.subject)
            return
        # A critical alert is never held by the rate limit (the info and warning ones must not
        # spend the budget it needs); it still counts in the window.
        if not self._has_room(now) and alert.severity != "critical":
            self.suppressed["rate"] += 1
            self._held += 1
            if self._held == 1:
                self.log.warning(
                    "alerts.rate_limited",
                    max_per_minute=self.options.max_per_minute,
                    kind=alert.kind,
                    subject=alert.subject,
                )
            return
        self._window.append(now)
        self._last[key] = now
        # Subjects are venues, strategies, instruments and venue order ids: a few, but not bounded
        # by the config (a contest's id is the venue's); what is remembered is.
        if len(self._last) > 4096:
            horizon = now - self.options.dedup_s
            self._last = {k: t for k, t in self._last.items() if t >= horizon}
        self._enqueue(alert)

    def _has_room(self, now: float) -> bool:
        window = self._window
        while window and window[0] <= now - _RATE_WINDOW_S:
            window.popleft()
        return len(window) < self.options.max_per_minute

    def _summary_if_due(self, now: float) -> None:
        """Once the rate limit allows again: one line saying how many alerts it held back."""
        if not self._held or not self._has_room(now):
            return
        held, self._held = self._held, 0
        self.log.info("alerts.rate_limit_ended", suppressed=held)
        self._enqueue(
            Alert(
                kind="alerts_suppressed",
                subject="alerts",
                severity="warning",
                text=(
                    f"{held} alert{'' if held == 1 else 's'} suppressed (more than "
                    f"{self.options.max_per_minute} a minute): see alerts.raised in the daemon's log"
                ),
                ts=self._wall_clock(),
            )
        )

    def _enqueue(self, alert: Alert) -> None:
        for ep in self._endpoints:
            try:
                ep.send.send_nowait(alert)
            except trio.WouldBlock:
                self.suppressed["queue_full"] += 1
                ep.dropping += 1
                if ep.dropping == 1:  # once per burst
                    self.log.warning(
                        "alerts.queue_full",
                        channel=ep.channel,
                        webhook=ep.source,
                        kind=alert.kind,
                        subject=alert.subject,
                    )
                continue
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                continue  # the notifier has stopped (the daemon's end)
            if ep.dropping:
                self.log.info(
                    "alerts.queue_recovered", channel=ep.channel, webhook=ep.source, dropped=ep.dropping
                )
                ep.dropping = 0

    # -- the posting side: a task per webhook ----------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Post until cancelled; at cancellation, what is queued gets `drain_s` more (one try
        each). Owns the httpx client unless one was given."""
        client = self._client
        if client is None:
            client = httpx.AsyncClient(timeout=httpx.Timeout(self.options.timeout_s), follow_redirects=False)
        try:
            async with trio.open_nursery() as nursery:
                for ep in self._endpoints:
                    nursery.start_soon(self._serve, client, ep)
                nursery.start_soon(self._tick)
                task_status.started()
        finally:
            if self._client is None:
                with trio.move_on_after(1.0, shield=True):
                    await client.aclose()

    async def _tick(self) -> None:
        """The rate limit's summary goes out even when no further alert comes to trigger it."""
        while True:
            await trio.sleep(1.0)
            try:
                self._summary_if_due(self._clock())
            except Exception:
                self.errors += 1
                self.log.exception("alerts.summary_failed")

    async def _serve(self, client: httpx.AsyncClient, ep: _Endpoint) -> None:
        current: Alert | None = None  # the alert being posted when the stop came
        try:
            async for alert in ep.receive:
                current = alert
                await self._deliver(client, ep, alert, retry=True)
                current = None
        finally:
            with trio.move_on_after(self.drain_s, shield=True):
                if current is not None:
                    # Posted again rather than lost: a duplicate on the phone is the lesser harm.
                    await self._deliver(client, ep, current, retry=False)
                while True:
                    try:
                        alert = ep.receive.receive_nowait()
                    except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                        break
                    await self._deliver(client, ep, alert, retry=False)

    async def _deliver(self, client: httpx.AsyncClient, ep: _Endpoint, alert: Alert, *, retry: bool) -> None:
        body = orjson.dumps(webhook_body(ep.channel, alert, origin=self.origin))
        attempts = 0
        while True:
            attempts += 1
            outcome = await self._post(client, ep, body)
            if outcome.ok:
                self.sent[ep.channel] += 1
                self.log.info(
                    "alerts.sent",
                    channel=ep.channel,
                    webhook=ep.source,
                    kind=alert.kind,
                    subject=alert.subject,
                    severity=alert.severity,
                    attempts=attempts,
                )
                return
            wait = self._retry_wait(outcome) if retry and attempts == 1 else None
            if wait is None:
                break
            self.log.info(
                "alerts.retrying",
                channel=ep.channel,
                webhook=ep.source,
                status=outcome.status,
                error=outcome.error,
                wait_s=round(wait, 3),
            )
            await trio.sleep(wait)
        self.failed[ep.channel] += 1
        self.log.warning(
            "alerts.post_failed",
            channel=ep.channel,
            webhook=ep.source,
            status=outcome.status,
            error=outcome.error,
            detail=outcome.detail,
            retry_after_s=outcome.retry_after_s,
            attempts=attempts,
            kind=alert.kind,
            subject=alert.subject,
        )

    def _retry_wait(self, outcome: _Outcome) -> float | None:
        if not outcome.retryable:
            return None
        if outcome.status == 429 and outcome.retry_after_s is not None:
            return outcome.retry_after_s
        return self.retry_backoff_s

    async def _post(self, client: httpx.AsyncClient, ep: _Endpoint, body: bytes) -> _Outcome:
        try:
            with trio.fail_after(self.options.timeout_s):
                async with client.stream("POST", ep.url, content=body, headers=_HEADERS) as response:
                    status = response.status_code
                    head = b""
                    if not 200 <= status < 300:
                        async for chunk in response.aiter_bytes():
                            head += chunk
                            if len(head) >= _READ_LIMIT:
                                break
                    retry_after = response.headers.get("retry-after")
        except (trio.TooSlowError, httpx.TimeoutException):
            return _Outcome(False, error="timeout")
        except httpx.ConnectError as exc:
            return _Outcome(False, error="connect", detail=ep.scrub(str(exc)) or None, retryable=True)
        except httpx.HTTPError as exc:
            return _Outcome(False, error=type(exc).__name__, detail=ep.scrub(str(exc)) or None)
        except Exception as exc:  # whatever else: a failure of this post, never of the daemon
            return _Outcome(False, error=type(exc).__name__)
        if 200 <= status < 300:
            return _Outcome(True, status=status)
        detail = ep.scrub(_one_line(head[:_READ_LIMIT].decode("utf-8", "replace"))[:200]) or None
        if status == 429:
            wait = _retry_after(retry_after, head)
            return _Outcome(
                False,
                status=status,
                detail=detail,
                retry_after_s=wait,
                retryable=wait is None or wait <= self.retry_after_max_s,
            )
        return _Outcome(False, status=status, detail=detail, retryable=status >= 500)
