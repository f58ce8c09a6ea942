"""The webhook notifier against a loopback HTTP server (tests/alerts/webhooks.py): each format's
body as pinned, deduplication, the rate limit and its summary, dead webhooks (refused, 500, a
server that never answers) that never hold up the trio loop and are counted, 429's Retry-After,
a full queue, the drain at the stop, and the URL (a secret) in no log line and no exception."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytest
import structlog
import trio

from tests.alerts.webhooks import Reply, WebhookServer, refused_url
from tradingd.engine.alerts import Alert, AlertNotifier, AlertOptions, WebhookOptions
from tradingd.engine.alerts.notifier import webhook_body
from tradingd.engine.logs.setup import redact_text
from tradingd.engine.model.errors import ConfigError

ORIGIN = "tradingd@test"
KILL = Alert(
    kind="kill_switch", subject="engine", severity="critical", text="kill switch engaged: drill", ts=17
)


def alert(i: int, kind: Any = "venue_down") -> Alert:
    return Alert(kind=kind, subject=f"venue{i}", severity="warning", text=f"venue{i} down", ts=i)


def hooks(**by_env: str) -> tuple[WebhookOptions, ...]:
    """{ENV_NAME: format}: one webhook per variable."""
    return tuple(WebhookOptions(format=fmt, url_env=name) for name, fmt in by_env.items())  # type: ignore[arg-type]


def make(
    webhooks: tuple[WebhookOptions, ...], environ: dict[str, str], **options: Any
) -> tuple[AlertNotifier, list[float]]:
    """A notifier on a clock the test moves (`clock[0]`, seconds), with short retries."""
    clock = [1000.0]
    notifier = AlertNotifier(
        AlertOptions(webhooks=webhooks, **options),
        environ=environ,
        clock=lambda: clock[0],
        origin=ORIGIN,
    )
    notifier.retry_backoff_s = 0.1
    return notifier, clock


async def serve(nursery: trio.Nursery) -> WebhookServer:
    server = WebhookServer()
    await nursery.start(server.serve)
    return server


async def test_each_format_gets_its_pinned_body(nursery: trio.Nursery, tmp_path: Path) -> None:
    server = await serve(nursery)
    url_file = tmp_path / "telegram-url"
    url_file.write_text(f"{server.base}/bot123456:AAtokenAA/sendMessage?chat_id=-42\n", encoding="utf-8")
    webhooks = (
        *hooks(SLACK_URL="slack", DISCORD_URL="discord", JSON_URL="json"),
        WebhookOptions(format="telegram", url_file=str(url_file)),
    )
    env = {
        "SLACK_URL": f"{server.base}/services/T1/B2/slacksecret",
        "DISCORD_URL": f"  {server.base}/api/webhooks/1/discordsecret\n",  # the shell's stray blanks
        "JSON_URL": f"{server.base}/json-hook",
    }
    notifier, _ = make(webhooks, env)
    await nursery.start(notifier.run)
    notifier.notify(KILL)
    # The server records a request before it answers: the counters move once the answer is read.
    await server.until(lambda: sum(notifier.sent.values()) == 4, what="four posts")

    line = "[CRITICAL] tradingd@test: kill switch engaged: drill"
    assert server.at("/services/T1/B2/slacksecret")[0].json() == {"text": line}
    assert server.at("/api/webhooks/1/discordsecret")[0].json() == {
        "content": line,
        "allowed_mentions": {"parse": []},
    }
    telegram = server.at("/bot123456:AAtokenAA/sendMessage")[0]
    assert telegram.path.endswith("?chat_id=-42") and telegram.json() == {"text": line}
    assert server.at("/json-hook")[0].json() == {
        "kind": "kill_switch",
        "subject": "engine",
        "severity": "critical",
        "text": "kill switch engaged: drill",
        "ts": 17,
    }
    assert all(r.headers["content-type"] == "application/json" for r in server.received)
    assert notifier.sent == {"slack": 1, "discord": 1, "json": 1, "telegram": 1}
    assert notifier.failed == {"slack": 0, "discord": 0, "json": 0, "telegram": 0}
    assert notifier.suppressed == {"dedup": 0, "rate": 0, "queue_full": 0}


async def test_a_long_or_multi_line_text_is_one_line_within_discords_limit(nursery: trio.Nursery) -> None:
    server = await serve(nursery)
    notifier, _ = make(hooks(D="discord"), {"D": f"{server.base}/d"})
    await nursery.start(notifier.run)
    notifier.notify(
        Alert(kind="strategy_failed", subject="s", severity="critical", text="a\nb " * 2000, ts=0)
    )
    await server.until(lambda: len(server.received) == 1)
    content = server.received[0].json()["content"]
    assert "\n" not in content and len(content) <= 2000 and content.endswith("…")


async def test_the_same_alert_five_times_is_posted_once(nursery: trio.Nursery) -> None:
    server = await serve(nursery)
    notifier, clock = make(hooks(J="json"), {"J": f"{server.base}/j"}, dedup_s=600.0)
    await nursery.start(notifier.run)
    for _ in range(5):
        notifier.notify(KILL)
    notifier.notify(alert(1))  # another subject: not a duplicate
    await server.until(lambda: notifier.sent == {"json": 2})
    await trio.sleep(0.2)
    assert [r.json()["kind"] for r in server.received] == ["kill_switch", "venue_down"]
    assert notifier.suppressed["dedup"] == 4 and notifier.sent == {"json": 2}

    clock[0] += 599.0
    notifier.notify(KILL)  # still within dedup_s
    assert notifier.suppressed["dedup"] == 5
    clock[0] += 2.0
    notifier.notify(KILL)  # past it: goes again
    await server.until(lambda: len(server.received) == 3)
    assert notifier.suppressed["dedup"] == 5


async def test_thirty_alerts_at_ten_a_minute_make_ten_posts_and_a_summary_later(
    nursery: trio.Nursery,
) -> None:
    server = await serve(nursery)
    notifier, clock = make(hooks(S="slack"), {"S": f"{server.base}/s"}, max_per_minute=10)
    await nursery.start(notifier.run)
    with structlog.testing.capture_logs() as logs:
        for i in range(30):
            notifier.notify(alert(i))
            clock[0] += 0.5  # 15 s for the 30
        await server.until(lambda: notifier.sent == {"slack": 10}, what="ten posts")
        await trio.sleep(1.5)  # the notifier's tick runs: still within the minute, no summary
    assert len(server.received) == 10
    assert [r.json()["text"] for r in server.received] == [
        f"[warning] {ORIGIN}: venue{i} down" for i in range(10)
    ]
    assert notifier.suppressed["rate"] == 20 and notifier.sent == {"slack": 10}
    assert [e["event"] for e in logs].count("alerts.rate_limited") == 1  # once for the episode

    clock[0] = 1000.0 + 60.0  # the first alert leaves the window: the rate allows again
    await server.until(lambda: len(server.received) == 11, what="the summary, without a new alert")
    assert server.received[10].json() == {
        "text": f"[warning] {ORIGIN}: 20 alerts suppressed (more than 10 a minute): "
        "see alerts.raised in the daemon's log"
    }
    notifier.notify(alert(99))  # the rate allows it: it goes
    await server.until(lambda: notifier.sent == {"slack": 12})
    assert len(server.received) == 12
    assert notifier.suppressed["rate"] == 20 and notifier.sent == {"slack": 12}


async def test_the_summary_goes_before_the_alert_that_finds_the_rate_open_again(
    nursery: trio.Nursery,
) -> None:
    server = await serve(nursery)
    notifier, clock = make(hooks(S="json"), {"S": f"{server.base}/s"}, max_per_minute=1)
    notifier.notify(alert(0))
    notifier.notify(alert(1))  # held
    clock[0] += 61.0
    notifier.notify(alert(2))  # before the notifier's own tick
    await nursery.start(notifier.run)
    await server.until(lambda: len(server.received) == 3)
    assert [r.json()["kind"] for r in server.received] == ["venue_down", "alerts_suppressed", "venue_down"]
    assert server.received[1].json()["text"].startswith("1 alert suppressed")


async def test_dead_webhooks_never_hold_up_the_loop_and_are_counted(nursery: trio.Nursery) -> None:
    server = await serve(nursery)
    server.replies["/broken"] = [Reply(status=500, body=b"upstream down")]
    server.replies["/silent"] = [Reply(hang=True)]
    env = {
        "REFUSED": refused_url("/refused"),
        "BROKEN": f"{server.base}/broken",
        "SILENT": f"{server.base}/silent",
    }
    notifier, _ = make(hooks(REFUSED="json", BROKEN="slack", SILENT="discord"), env, timeout_s=0.5)
    await nursery.start(notifier.run)

    late: list[float] = []
    notify_s: list[float] = []

    async def ticking() -> None:
        for _ in range(150):  # 1.5 s of 10 ms sleeps while the posts fail
            t0 = trio.current_time()
            await trio.sleep(0.01)
            late.append(trio.current_time() - t0 - 0.01)

    async with trio.open_nursery() as inner:
        inner.start_soon(ticking)
        for i in range(2):
            t0 = time.perf_counter()
            notifier.notify(alert(i))
            notify_s.append(time.perf_counter() - t0)
        await server.until(
            lambda: notifier.failed == {"json": 2, "slack": 2, "discord": 2}, what="every post failed"
        )
    assert notifier.sent == {"json": 0, "slack": 0, "discord": 0}
    # 500 and a refused connection: retried once; a timeout: not (the webhook may have it).
    assert len(server.at("/broken")) == 4 and len(server.at("/silent")) == 2
    assert max(notify_s) < 0.005, notify_s
    assert max(late) < 0.05, f"the loop was held up: worst lateness {max(late) * 1000:.1f} ms"


async def test_failures_are_logged_with_channel_and_status_never_the_url(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    server = await serve(nursery)
    token = "987654321:AAsecretBotTokenZZ"
    slack_path = "/services/T0SECRET/B0SECRET/slackSECRETpath"
    server.replies[slack_path] = [Reply(status=403, echo_path=True)]  # quotes the path back
    server.replies["/api/webhooks/1/discordSECRET"] = [Reply(status=500, echo_path=True)]
    json_url = f"{server.base}/jsonSECRET?key=SECRETkey"
    server.replies["/jsonSECRET"] = [Reply(hang=True)]
    telegram = refused_url(f"/bot{token}/sendMessage?chat_id=1")
    file = tmp_path / "telegram"
    file.write_text(telegram, encoding="utf-8")
    env = {
        "SLACK": f"{server.base}{slack_path}",
        "DISCORD": f"{server.base}/api/webhooks/1/discordSECRET",
        "JSON": json_url,
    }
    webhooks = (
        *hooks(SLACK="slack", DISCORD="discord", JSON="json"),
        WebhookOptions(format="telegram", url_file=str(file)),
    )
    with structlog.testing.capture_logs() as logs:
        notifier, _ = make(webhooks, env, timeout_s=0.3)
        async with trio.open_nursery() as inner:
            await inner.start(notifier.run)
            notifier.notify(KILL)
            await server.until(lambda: sum(notifier.failed.values()) == 4, what="four failures")
            inner.cancel_scope.cancel()
    failures = {e["channel"]: e for e in logs if e["event"] == "alerts.post_failed"}
    assert failures["slack"]["status"] == 403 and failures["slack"]["attempts"] == 1  # a 4xx: no retry
    assert failures["slack"]["webhook"] == "$SLACK" and "[redacted]" in failures["slack"]["detail"]
    assert failures["discord"]["status"] == 500 and failures["discord"]["attempts"] == 2
    assert failures["json"]["error"] == "timeout" and failures["json"]["status"] is None
    assert failures["telegram"]["error"] == "connect" and failures["telegram"]["attempts"] == 2
    assert failures["telegram"]["webhook"] == f"file {file}"
    text = repr(logs) + repr(notifier.__dict__)
    for secret in (token, "slackSECRETpath", "discordSECRET", "jsonSECRET", "SECRETkey", slack_path):
        assert secret not in text, secret
    # Registered with the log redaction too: a line of anyone else's that quotes one loses it.
    assert token not in redact_text(f"POST {telegram} failed") and "discordSECRET" not in redact_text(
        env["DISCORD"]
    )


async def test_429_waits_its_retry_after_then_posts_and_gives_up_past_the_bound(
    nursery: trio.Nursery,
) -> None:
    server = await serve(nursery)
    server.replies["/soon"] = [Reply(status=429, headers=(("retry-after", "0.3"),)), Reply()]
    server.replies["/later"] = [Reply(status=429, headers=(("retry-after", "3600"),))]
    # Telegram says it in the body (`parameters.retry_after`).
    server.replies["/botX/sendMessage"] = [
        Reply(status=429, body=b'{"ok":false,"error_code":429,"parameters":{"retry_after":0.2}}'),
        Reply(),
    ]
    env = {
        "SOON": f"{server.base}/soon",
        "LATER": f"{server.base}/later",
        "TG": f"{server.base}/botX/sendMessage?chat_id=1",
    }
    notifier, _ = make(hooks(SOON="slack", LATER="discord", TG="telegram"), env)
    with structlog.testing.capture_logs() as logs:
        await nursery.start(notifier.run)
        notifier.notify(KILL)
        await server.until(lambda: notifier.sent["slack"] == 1 and notifier.sent["telegram"] == 1)
        await server.until(lambda: notifier.failed["discord"] == 1)
    soon = server.at("/soon")
    assert len(soon) == 2 and soon[1].at - soon[0].at >= 0.3
    tg = server.at("/botX/sendMessage")
    assert len(tg) == 2 and tg[1].at - tg[0].at >= 0.2
    assert len(server.at("/later")) == 1  # an hour is past the bound: given up, counted
    (gave_up,) = [e for e in logs if e["event"] == "alerts.post_failed"]
    assert gave_up["channel"] == "discord" and gave_up["status"] == 429 and gave_up["retry_after_s"] == 3600


async def test_a_full_queue_drops_counts_and_logs_once_per_burst(nursery: trio.Nursery) -> None:
    server = await serve(nursery)
    server.replies["/slow"] = [Reply(hang=True)]
    notifier = AlertNotifier(
        AlertOptions(webhooks=hooks(SLOW="json"), timeout_s=30.0),
        environ={"SLOW": f"{server.base}/slow"},
        queue_size=2,
        origin=ORIGIN,
    )
    with structlog.testing.capture_logs() as logs:
        await nursery.start(notifier.run)
        notifier.notify(alert(0))
        await server.until(lambda: len(server.received) == 1)  # taken: the post hangs
        for i in range(1, 6):
            notifier.notify(alert(i))  # 2 queued, 3 dropped
    assert notifier.suppressed["queue_full"] == 3
    assert [e["event"] for e in logs].count("alerts.queue_full") == 1


async def test_what_is_queued_is_posted_at_the_stop(nursery: trio.Nursery) -> None:
    server = await serve(nursery)
    notifier, _ = make(hooks(J="json"), {"J": f"{server.base}/j"})
    async with trio.open_nursery() as inner:
        await inner.start(notifier.run)
        for i in range(3):
            notifier.notify(alert(i))
        inner.cancel_scope.cancel()  # the daemon stops before the task ran
    # The stop waited (shielded, at most drain_s) for the post it interrupted and what was queued.
    assert [r.json()["subject"] for r in server.received] == ["venue0", "venue1", "venue2"]
    assert notifier.sent == {"json": 3}


async def test_notify_never_raises() -> None:
    def broken_clock() -> float:
        raise RuntimeError("clock gone")

    with structlog.testing.capture_logs() as logs:
        notifier = AlertNotifier(
            AlertOptions(webhooks=hooks(J="json")), environ={"J": "http://127.0.0.1:9/j"}, clock=broken_clock
        )
        notifier.notify(KILL)
    assert notifier.errors == 1
    assert [e["event"] for e in logs] == ["alerts.notify_failed"]


def test_a_missing_variable_or_file_is_one_line_naming_it_never_a_value(tmp_path: Path) -> None:
    webhooks = (
        *hooks(SLACK_WEBHOOK_URL="slack", BAD_URL="discord", TG_URL="telegram"),
        WebhookOptions(format="json", url_file="missing-url"),
    )
    env = {
        "BAD_URL": "hooks.slack.com/services/T/B/notaURLsecret",
        "TG_URL": "https://api.telegram.org/botSECRET1/sendMessage",
    }
    with pytest.raises(ConfigError) as caught:
        AlertNotifier(AlertOptions(webhooks=webhooks), environ=env, config_path=tmp_path / "live.toml")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{tmp_path / 'live.toml'}: alerts.webhooks[0].url_env:")
    assert "the environment variable SLACK_WEBHOOK_URL is not set" in message
    assert (
        "alerts.webhooks[1].url_env: the environment variable BAD_URL does not hold an http:// or "
        "https:// URL" in message
    )
    assert (
        "alerts.webhooks[2].url_env: the environment variable TG_URL holds a Telegram URL without chat_id"
        in message
    )
    assert f"alerts.webhooks[3].url_file: the file {tmp_path / 'missing-url'} does not exist" in message
    assert "notaURLsecret" not in message and "SECRET1" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__  # nothing chained


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"U": ""}, "the environment variable U is empty"),
        ({"U": "   "}, "the environment variable U is empty"),
        ({"U": "ftp://host/x"}, "the environment variable U does not hold an http:// or https:// URL"),
        ({"U": "http://[::1/x"}, "the environment variable U does not hold a URL"),
    ],
)
def test_a_variable_that_holds_no_url(env: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError, match="^alerts.webhooks.0..url_env: (.*)$") as caught:
        AlertNotifier(AlertOptions(webhooks=hooks(U="slack")), environ=env)
    assert str(caught.value) == f"alerts.webhooks[0].url_env: {problem}"


def test_a_url_file_empty_or_of_two_words(tmp_path: Path) -> None:
    file = tmp_path / "url"
    for content, problem in (("\n", "is empty"), ("http://a/x http://b/y", "holds more than one word")):
        file.write_text(content, encoding="utf-8")
        with pytest.raises(ConfigError) as caught:
            AlertNotifier(
                AlertOptions(webhooks=(WebhookOptions(format="slack", url_file="url"),)),
                environ={},
                config_path=tmp_path / "c.toml",
            )
        assert f"the file {file} {problem}" in str(caught.value)
        assert "http://" not in str(caught.value)


def test_no_secret_in_a_repr() -> None:
    notifier = AlertNotifier(
        AlertOptions(webhooks=hooks(S="slack")),
        environ={"S": "https://hooks.example/services/T/B/reprSECRET"},
    )
    assert "reprSECRET" not in repr(notifier._endpoints) and "$S" in repr(notifier._endpoints)
    assert notifier.channels == ("slack",)
    assert math.isclose(notifier.options.timeout_s, 5.0)


def _kind(kind: Any, subject: str, severity: Any = "critical") -> Alert:
    return Alert(kind=kind, subject=subject, severity=severity, text=f"{kind} {subject}", ts=0)


async def test_a_recovery_in_between_lets_the_problem_alert_again_within_dedup(nursery: trio.Nursery) -> None:
    """The flap: a kill switch engaged, cleared and engaged again (a venue down, up, down) within
    dedup_s: the second engagement is not a duplicate, the phone's last word is "engaged"."""
    server = await serve(nursery)
    notifier, clock = make(hooks(J="json"), {"J": f"{server.base}/j"}, dedup_s=600.0)
    await nursery.start(notifier.run)
    start = clock[0]
    sequence = [
        (10, _kind("kill_switch", "engine")),
        (61, _kind("venue_down", "deribit")),
        (100, _kind("venue_up", "deribit", "info")),
        (150, _kind("kill_switch_cleared", "engine", "info")),
        (250, _kind("kill_switch", "engine")),
        (260, _kind("venue_down", "deribit")),
        (300, _kind("venue_down", "deribit")),  # no recovery in between: a duplicate
        (320, _kind("venue_up", "deribit", "info")),  # up again: not a duplicate of the t=100 one
    ]
    for at, a in sequence:
        clock[0] = start + at
        notifier.notify(a)
    await server.until(lambda: len(server.received) == 7, what="seven posts")
    await trio.sleep(0.2)
    assert [(r.json()["kind"], r.json()["subject"]) for r in server.received] == [
        ("kill_switch", "engine"),
        ("venue_down", "deribit"),
        ("venue_up", "deribit"),
        ("kill_switch_cleared", "engine"),
        ("kill_switch", "engine"),
        ("venue_down", "deribit"),
        ("venue_up", "deribit"),
    ]
    assert notifier.suppressed["dedup"] == 1


async def test_a_critical_alert_is_never_held_by_the_rate_limit(nursery: trio.Nursery) -> None:
    server = await serve(nursery)
    notifier, _ = make(hooks(J="json"), {"J": f"{server.base}/j"}, max_per_minute=2)
    await nursery.start(notifier.run)
    notifier.notify(_kind("foreign_order", "deribit", "warning"))
    notifier.notify(_kind("venue_override", "engine", "info"))
    notifier.notify(_kind("recording_error", "recording", "warning"))  # held: the budget is spent
    notifier.notify(KILL)  # critical: goes all the same
    notifier.notify(KILL)  # ... but is still deduplicated
    await server.until(lambda: len(server.received) == 3, what="three posts")
    await trio.sleep(0.2)
    assert [r.json()["kind"] for r in server.received] == ["foreign_order", "venue_override", "kill_switch"]
    assert notifier.suppressed == {"dedup": 1, "rate": 1, "queue_full": 0}


def test_free_text_pings_nobody_on_slack_nor_discord() -> None:
    """A strategy's failure message or a kill switch's reason is free text: on Discord no
    mention is parsed; on Slack &, < and > are escaped (so <!channel> is plain text)."""
    text = "failed: <!channel> @everyone <@U123> a&b > c"
    a = Alert(kind="strategy_failed", subject="s", severity="critical", text=text, ts=0)
    discord = webhook_body("discord", a, origin=ORIGIN)
    assert discord["allowed_mentions"] == {"parse": []}
    assert discord["content"].endswith(text)
    slack = webhook_body("slack", a, origin=ORIGIN)
    assert slack == {
        "text": f"[CRITICAL] {ORIGIN}: failed: &lt;!channel&gt; @everyone &lt;@U123&gt; a&amp;b &gt; c"
    }
    assert webhook_body("telegram", a, origin=ORIGIN)["text"].endswith(text)  # no parse_mode: plain
    assert webhook_body("json", a, origin=ORIGIN)["text"] == text
