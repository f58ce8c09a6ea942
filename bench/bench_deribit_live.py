"""The daemon's Deribit path on loopback against a load generator that is not the bottleneck:
client CPU per frame beside a bare trio-websocket client on the same frames, and tick-to-order.

    python bench/bench_deribit_live.py [--burst-steps 6000] [--rounds 5] [--probes 1500]

The load generator (`_loadgen.py`: the simulator's protocol, a bare socket, the burst's frames
encoded before it is sent) runs in a child process; every client runs in a fresh process of its
own, and its CPU (`time.process_time`, idle waits excluded) is its own. Clients, interleaved
round by round (A B ..., then B A ...), medians reported:

- `bare`: trio-websocket, the library's defaults, receiving the frames (nothing else per frame);
- `bare-q`: the same with the connection options tradingd uses (`default_connect`);
- `tradingd`: the daemon's engine (session, decoder, router, mailbox, a counting strategy
  subscribed to every instrument: ticker, book, trades);
- `decode`: a bare client that keeps the frames, then Deribit's decoder alone on them (the part
  of tradingd's cost that is decoding).

Every client subscribes the same channels of the same seeded market, so each receives the same
frames. The `drain` client (a raw socket reading bytes) shows the generator's own ceiling. Then
tick-to-order: a strategy answers each BTC-PERPETUAL ticker with an order; the generator stamps
the ticker's frame just before its write and the order's bytes with the kernel's receive time
(`_loadgen.py` says why both), one probe at a time with `--gap-ms` between. Beside it, interleaved,
the floor: `echo`, a bare trio-websocket client answering the same tickers with the same order.

    python bench/bench_deribit_live.py --metrics [--rounds 5] [--scrape-s 1]

What `[metrics]` costs the hot path: the same burst into the daemon itself (`Daemon`: its status
file each second, its journal, the engine as above), without `[metrics]` (`daemon`) and with it
(`daemon-metrics`: the server on a loopback port, scraped every `--scrape-s` during the burst, a
harder rate than Prometheus's usual 15 s), interleaved round by round, events/s and client CPU per
frame, medians. Both record the same counters and histograms (they are always kept); the
difference is serving and scraping them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import trio
import trio_websocket
import wsproto
import wsproto.events as wse
from _livebench import Counter, LabelAnswerer, free_port, latency_figures, latency_line
from _loadgen import burst_answer

from tradingd.connectors.deribit.codec import DeribitDecoder
from tradingd.connectors.deribit.settings import DeribitSettings
from tradingd.engine import DataKind, Subscription
from tradingd.engine.logs.setup import configure_logging
from tradingd.engine.model.instruments import InstrumentRegistry
from tradingd.engine.runtime.live import LiveEngine
from tradingd.simulators.deribit.simulator import DEFAULT_ACCOUNTS

if TYPE_CHECKING:
    from tradingd.engine.daemon import Daemon

PERP = "BTC-PERPETUAL"
CREDS = {
    "DERIBIT_CLIENT_ID": next(iter(DEFAULT_ACCOUNTS)),
    "DERIBIT_CLIENT_SECRET": next(iter(DEFAULT_ACCOUNTS.values())),
}
HERE = Path(__file__).resolve().parent
NOTIFICATION = '{"jsonrpc":"2.0","method":"subscription"'
KINDS = ("ticker", "book", "trades")


def settings(port: int) -> DeribitSettings:
    base = f"127.0.0.1:{port}"
    return DeribitSettings(
        url=f"ws://{base}/ws/api/v2",
        rest_url=f"http://{base}",
        matching_rate=1e6,
        matching_burst=1e6,
        request_timeout_s=600,  # the generator prepares a burst before answering
        stale_after_s=600,
    )


# -- the bare clients ------------------------------------------------------------------------
class Rpc:
    """Requests on a bare trio-websocket connection; what else arrives meanwhile is kept."""

    def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
        self.ws = ws
        self.rid = 0
        self.other: list[str | bytes] = []

    async def send(self, method: str, params: dict[str, Any] | None = None) -> int:
        self.rid += 1
        await self.ws.send_message(
            orjson.dumps(
                {"jsonrpc": "2.0", "id": self.rid, "method": method, "params": params or {}}
            ).decode()
        )
        return self.rid

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        rid = await self.send(method, params)
        while True:
            message = await self.ws.get_message()
            if not (isinstance(message, str) and message.startswith(NOTIFICATION)):
                msg = orjson.loads(message)
                if msg.get("id") == rid:
                    if "error" in msg:
                        raise RuntimeError(f"{method}: {msg['error']}")
                    return msg.get("result")
            self.other.append(message)


async def subscribe_everything(rpc: Rpc, currencies: list[str]) -> list[Any]:
    """What the tradingd client subscribes to (`Counter`): every instrument's ticker, book and
    trades at the settings' interval. Returns the instruments answers."""
    answers = []
    names = []
    for currency in currencies:
        for kind in ("future", "option"):
            result = await rpc.call(
                "public/get_instruments", {"currency": currency, "kind": kind, "expired": False}
            )
            answers.append(result)
            names += [item["instrument_name"] for item in result]
    channels = sorted(f"{k}.{n}.100ms" for n in names for k in KINDS)
    for i in range(0, len(channels), 100):
        await rpc.call("public/subscribe", {"channels": channels[i : i + 100]})
    return answers


async def bare(port: int, steps: int, *, queue: bool, keep: bool) -> dict[str, Any]:
    url = f"ws://127.0.0.1:{port}/ws/api/v2"
    # `bare-q`: the options tradingd gives trio-websocket (engine.venue.session `default_connect`).
    from tradingd.engine.venue.websocket import RECEIVE_BUFFER

    opts = {
        "max_message_size": 16 * 1024 * 1024,
        "message_queue_size": 4096,
        "receive_buffer_size": RECEIVE_BUFFER,
    }
    if not queue:
        opts = {}
    async with trio_websocket.open_websocket_url(url, **opts) as ws:  # type: ignore[arg-type]
        rpc = Rpc(ws)
        answers = await subscribe_everything(rpc, ["BTC", "ETH"])
        frames = (await rpc.call("bench/prepare", {"steps": steps}))["frames"]
        kept: list[str | bytes] = []
        get = ws.get_message
        cpu0, t0 = time.process_time(), time.perf_counter()
        await rpc.send("bench/burst")
        await get()  # its answer comes first
        if keep:
            for _ in range(frames):
                kept.append(await get())
        else:
            for _ in range(frames):
                await get()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
        out: dict[str, Any] = {"frames": frames, "cpu_s": cpu, "wall_s": wall}
        out["server"] = await rpc.call("bench/stats")
    if keep:
        out["decoder_cpu_s"] = decode_alone(answers, rpc.other, kept)
    return out


def decode_alone(answers: list[Any], before: list[str | bytes], frames: list[str | bytes]) -> float:
    """Deribit's decoder on `frames` (after the instruments and the frames that came before
    them: the book snapshots), CPU seconds of the `frames` alone."""
    decoder = DeribitDecoder(InstrumentRegistry())
    for result in answers:
        decoder.learn_instruments(orjson.dumps(result))
    now = time.time_ns()
    for frame in before:
        decoder.decode(frame, now)
    decode = decoder.decode
    cpu0 = time.process_time()
    for frame in frames:
        decode(frame, now)
    cpu = time.process_time() - cpu0
    if decoder.stats.malformed:
        raise RuntimeError(f"the decoder refused {decoder.stats.malformed} frames")
    return cpu


def drain(port: int, steps: int) -> dict[str, Any]:
    """The generator's ceiling: a raw socket that only reads bytes (no WebSocket parsing)."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        sock.sendall(ws.send(wse.Request(host="127.0.0.1", target="/ws/api/v2")))
        accepted = False
        while not accepted:
            ws.receive_data(sock.recv(65_536))
            accepted = any(isinstance(e, wse.AcceptConnection) for e in ws.events())
        rid = 0

        def call(method: str, params: dict[str, Any]) -> Any:
            nonlocal rid
            rid += 1
            payload = orjson.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
            sock.sendall(ws.send(wse.Message(data=payload.decode())))
            text: list[str] = []
            while True:
                ws.receive_data(sock.recv(1 << 20))
                for event in ws.events():
                    if isinstance(event, wse.TextMessage):
                        text.append(event.data)
                        if event.message_finished:
                            msg = orjson.loads("".join(text))
                            text.clear()
                            if msg.get("id") == rid:
                                return msg["result"]

        # Everything `subscribe_everything` takes, so the burst is the same frames.
        names = []
        for currency in ("BTC", "ETH"):
            for kind in ("future", "option"):
                names += [
                    i["instrument_name"]
                    for i in call(
                        "public/get_instruments", {"currency": currency, "kind": kind, "expired": False}
                    )
                ]
        channels = sorted(f"{k}.{n}.100ms" for n in names for k in KINDS)
        for i in range(0, len(channels), 100):
            call("public/subscribe", {"channels": channels[i : i + 100]})
        prepared = call("bench/prepare", {"steps": steps})
        expect = prepared["bytes"] + len(burst_answer(rid + 1, prepared["frames"])) + 2  # header
        buf = bytearray(1 << 20)
        t0 = time.perf_counter()
        rid += 1
        payload = orjson.dumps({"jsonrpc": "2.0", "id": rid, "method": "bench/burst", "params": {}})
        sock.sendall(ws.send(wse.Message(data=payload.decode())))
        got = 0
        while got < expect:
            got += sock.recv_into(buf)
        wall = time.perf_counter() - t0
    return {"frames": prepared["frames"], "bytes": prepared["bytes"], "wall_s": wall}


# -- the tradingd client ------------------------------------------------------------------------
class CountAll(Counter):
    """`Counter`, subscribed to every instrument from its start (the generator sends no market
    between bursts: no first event would come)."""

    async def on_start(self) -> None:
        self.subscribed = True
        self.ctx.subscribe(self.everything(self.ctx))


def bench_daemon(counter: CountAll, port: int, state: Path, metrics_port: int | None) -> Daemon:
    """`tradingd run` as `--metrics` runs it: a live daemon (state in `state`) with the counting
    strategy, `[metrics]` on `metrics_port` (None: no `[metrics]`)."""
    # Imported here: the other clients also run on older code (`--before`), which has no metrics.
    from tradingd.engine.daemon import Daemon, DaemonOptions, DaemonSettings
    from tradingd.engine.daemon.settings import MetricsOptions

    return Daemon(
        DaemonSettings(
            config_path=state / "bench.toml",
            mode="live",
            strategies=[counter],
            venues={"deribit": settings(port)},
            options=DaemonOptions(state_dir=str(state)),
            metrics=None if metrics_port is None else MetricsOptions(listen=f"127.0.0.1:{metrics_port}"),
        ),
        environ=CREDS,
    )


class Scraper:
    """Prometheus's part: GET /metrics every `every_s` from a thread of its own (in the client's
    process: its CPU is the client's), from `go` until `stop`. Its HTTP client is made and a first
    scrape taken before (`warm`): a server's first answer and a client's TLS set-up are paid once
    in a daemon's life, not in each burst."""

    def __init__(self, port: int, every_s: float) -> None:
        import httpx

        self.url = f"http://127.0.0.1:{port}/metrics"
        self.every_s = every_s
        self.scrapes = 0
        self.bytes = 0
        self.failures = 0
        self.warmed = threading.Event()
        self._go = threading.Event()
        self._stop = threading.Event()
        self._http = httpx.Client(timeout=10)
        self._thread = threading.Thread(target=self._run, name="bench-scraper", daemon=True)
        self._thread.start()

    async def warm(self) -> None:
        """Wait (the trio loop free to answer) for the first scrape."""
        with trio.fail_after(30):
            while not self.warmed.is_set():  # noqa: ASYNC110 (set by a thread: a threading.Event)
                await trio.sleep(0.05)
        if self.failures:
            raise RuntimeError(f"the first scrape of {self.url} failed")

    def go(self) -> None:
        self._go.set()

    def stop(self) -> None:
        self._stop.set()
        self._go.set()
        self._thread.join(10)
        self._http.close()

    def _get(self) -> None:
        answer = self._http.get(self.url)
        self.failures += answer.status_code != 200
        self.bytes = len(answer.content)

    def _run(self) -> None:
        try:
            self._get()
        except Exception:
            self.failures += 1
        self.warmed.set()
        self._go.wait()
        while not self._stop.is_set():
            self._get()
            self.scrapes += 1
            self._stop.wait(self.every_s)


async def tradingd(
    port: int, steps: int, profile: str | None, daemon: str | None = None, scrape_s: float = 1.0
) -> dict[str, Any]:
    """The burst into the engine (`daemon` None), or into the daemon without `[metrics]`
    ("off") or with them, scraped every `scrape_s` ("on")."""
    counter = CountAll(
        Subscription("deribit", PERP, {DataKind.TICKER}),
        lambda ctx: [Subscription("deribit", i.symbol) for i in ctx.instruments("deribit")],
    )
    scraper: Scraper | None = None
    metrics_port: int | None = None
    the_daemon: Daemon | None = None
    if daemon is None:
        engine = LiveEngine([counter], {"deribit": settings(port)}, mode="live", environ=CREDS)
    else:
        metrics_port = free_port() if daemon == "on" else None
        state = Path(tempfile.mkdtemp(prefix="tradingd-bench-daemon-"))
        the_daemon = bench_daemon(counter, port, state, metrics_port)
        engine = the_daemon.engine
    out: dict[str, Any] = {}
    async with trio.open_nursery() as nursery:
        if the_daemon is None:
            await nursery.start(engine.run)
        else:
            nursery.start_soon(the_daemon.run)
            with trio.fail_after(60):
                await engine.started.wait()  # the metrics are served before the engine starts
            if metrics_port is not None:
                scraper = Scraper(metrics_port, scrape_s)
        session: Any = engine.venues["deribit"]
        with trio.fail_after(60):
            await engine.ready.wait()
            while not (counter.subscribed and session.desired_channels() <= session.channels):  # noqa: ASYNC110
                await trio.sleep(0.05)
        prepared = orjson.loads(bytes(await session.call("bench/prepare", {"steps": steps})))
        frames = prepared["frames"]
        slot = engine.router.slots()[0]
        target = session.stats.frames + frames + 1  # and the burst's answer
        before = counter.count
        prof = None
        if profile:
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
        if scraper is not None:
            await scraper.warm()
            scraper.go()
        cpu0, t0 = time.process_time(), time.perf_counter()
        await session.call("bench/burst", {})
        # Through once every frame was read and every event handled (polled: its few wakeups
        # are counted against tradingd).
        channel = getattr(engine, "_receive", None)  # the router task's queue (the code at i17-base)
        while (  # noqa: ASYNC110
            session.stats.frames < target
            or len(slot.mailbox)
            or (channel is not None and channel.statistics().current_buffer_used)
        ):
            await trio.sleep(0.01)
        cpu = time.process_time() - cpu0
        if scraper is not None:
            scraper.stop()
        if prof is not None and profile:
            prof.disable()
            prof.dump_stats(profile)
        out = {
            "frames": frames,
            "cpu_s": cpu,
            "events": counter.count - before,
            "wall_s": counter.last - t0,
            "malformed": session.stats.malformed,
            "conflated": slot.mailbox.stats.conflated + slot.mailbox.stats.merged,
            "server": orjson.loads(bytes(await session.call("bench/stats", {}))),
        }
        if scraper is not None:
            if scraper.failures or not scraper.scrapes:
                raise RuntimeError(f"scrapes: {scraper.scrapes}, failed: {scraper.failures}")
            out["scrapes"] = scraper.scrapes
            out["scrape_bytes"] = scraper.bytes
        nursery.cancel_scope.cancel()
    if the_daemon is not None:
        shutil.rmtree(the_daemon.paths.state_dir, ignore_errors=True)
    return out


async def latency(port: int, probes: int, gap_ms: float) -> dict[str, Any]:
    answerer = LabelAnswerer("deribit", PERP, Decimal(10))
    engine = LiveEngine([answerer], {"deribit": settings(port)}, mode="live", environ=CREDS)
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        session: Any = engine.venues["deribit"]
        with trio.fail_after(60):
            await engine.ready.wait()
            while (PERP, DataKind.TICKER) not in engine.router.merged("deribit"):  # noqa: ASYNC110
                await trio.sleep(0.05)
        cpu0 = time.process_time()
        await session.call("bench/probe", {"instrument": PERP, "count": probes, "gap_ms": gap_ms})
        result = orjson.loads(bytes(await session.call("bench/latency", {})))
        cpu = time.process_time() - cpu0
        nursery.cancel_scope.cancel()
    return probe_figures(result, answerer.sent, cpu)


async def echo(port: int, probes: int, gap_ms: float) -> dict[str, Any]:
    """The floor of tick-to-order here: a bare trio-websocket client on the same connection (logged
    in, the same channels as `latency`'s engine) that answers each ticker of PERP with the same
    order, built from the parsed frame and nothing else (no decoder, no strategy, no order
    tracking). What it measures beyond zero is the machine's: the two processes' wake-ups, the
    loopback's delivery, trio's scheduler, trio-websocket."""
    from tradingd.connectors.deribit.stream import _PRIVATE_CHANNELS  # what the engine takes too

    url = f"ws://127.0.0.1:{port}/ws/api/v2"
    async with trio_websocket.open_websocket_url(url, max_message_size=16 * 1024 * 1024) as ws:
        rpc = Rpc(ws)
        await rpc.call(
            "public/auth",
            {
                "grant_type": "client_credentials",
                "client_id": CREDS["DERIBIT_CLIENT_ID"],
                "client_secret": CREDS["DERIBIT_CLIENT_SECRET"],
            },
        )
        await rpc.call("public/subscribe", {"channels": [f"ticker.{PERP}.100ms", *_PRIVATE_CHANNELS]})
        head = NOTIFICATION + ',"params":{"channel":"ticker.' + PERP + "."
        cpu0 = time.process_time()
        await rpc.call("bench/probe", {"instrument": PERP, "count": probes, "gap_ms": gap_ms})
        done = await rpc.send("bench/latency")
        pending, rpc.other = rpc.other, []  # a probe's ticker may have come before the answer
        answered = 0
        while True:
            message = pending.pop(0) if pending else await ws.get_message()
            if isinstance(message, str) and message.startswith(head):
                data = orjson.loads(message)["params"]["data"]
                if not data.get("best_bid_price"):
                    continue
                answered += 1
                await rpc.send(
                    "private/buy",
                    {
                        "instrument_name": PERP,
                        "amount": 10,
                        "type": "limit",
                        "label": f"lat-{data['timestamp']}",
                        "time_in_force": "good_til_cancelled",
                        "price": int(data["best_bid_price"] * 0.5),
                    },
                )
            elif not (isinstance(message, str) and message.startswith(NOTIFICATION)):
                msg = orjson.loads(message)
                if msg.get("id") == done:
                    result = msg["result"]
                    break
        cpu = time.process_time() - cpu0
    return probe_figures(result, answered, cpu)


def probe_figures(result: dict[str, Any], answered: int, cpu: float) -> dict[str, Any]:
    """A latency client's figures from the generator's `bench/latency` answer."""
    return {
        "probes": result["probes"],
        "answered": answered,
        # The client's CPU per probe: the ticker, the order sent, its answer and its reports.
        "cpu_us_per_probe": cpu / max(1, result["probes"]) * 1e6,
        "latency_us": latency_figures(result["samples_us"]),
        "read_us": latency_figures(result.get("read_us", [])),
    }


def client(args: argparse.Namespace) -> dict[str, Any]:
    if args.log_level == "warning":
        configure_logging("warning", "json")
    else:  # as the daemon logs: every line rendered and written to a file (and a stream)
        log_dir = Path(tempfile.mkdtemp(prefix="tradingd-bench-"))
        configure_logging(args.log_level, "json", open(os.devnull, "w"), path=log_dir / "bench.log")  # noqa: SIM115
    try:
        return _client(args)
    finally:
        if args.log_level != "warning":
            configure_logging("warning", "json")  # closes the file
            shutil.rmtree(log_dir, ignore_errors=True)


def _client(args: argparse.Namespace) -> dict[str, Any]:
    if args.client == "drain":
        return drain(args.port, args.burst_steps)
    if args.client in ("bare", "bare-q", "decode"):
        return trio.run(
            lambda: bare(
                args.port, args.burst_steps, queue=args.client != "bare", keep=args.client == "decode"
            )
        )
    if args.client == "tradingd":
        return trio.run(tradingd, args.port, args.burst_steps, args.profile)
    if args.client in ("daemon", "daemon-metrics"):
        on = "on" if args.client == "daemon-metrics" else "off"
        return trio.run(tradingd, args.port, args.burst_steps, args.profile, on, args.scrape_s)
    if args.client == "echo":
        return trio.run(echo, args.port, args.probes, args.gap_ms)
    return trio.run(latency, args.port, args.probes, args.gap_ms)


# -- the runner --------------------------------------------------------------------------------
def run_client(kind: str, port: int, args: argparse.Namespace) -> dict[str, Any]:
    """One client in a fresh process; `<kind>-before` runs `kind` on the code at `--before`."""
    env = dict(os.environ)
    python = sys.executable
    if kind.endswith("-before"):
        kind = kind.removesuffix("-before")
        if args.before:
            env["PYTHONPATH"] = args.before
        python = args.before_python or python
    argv = [python, __file__, "--client", kind, "--port", str(port)]
    argv += ["--log-level", args.log_level, "--scrape-s", str(args.scrape_s)]
    argv += [
        "--burst-steps",
        str(args.burst_steps),
        "--probes",
        str(args.probes),
        "--gap-ms",
        str(args.gap_ms),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=1800, check=False, env=env)
    if done.returncode:
        raise RuntimeError(f"{kind} client failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def start_generator(port: int) -> tuple[subprocess.Popen[str], int]:
    child = subprocess.Popen(
        [sys.executable, str(HERE / "_loadgen.py"), "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline().split()
    if not line or line[0] != "listening":
        child.kill()
        raise RuntimeError("the load generator did not start")
    return child, int(line[1])


def per_frame_us(r: dict[str, Any], key: str = "cpu_s") -> float:
    return float(r[key]) / float(r["frames"]) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument(
        "--burst-steps", type=int, default=6000, help="market steps in a burst (about 5 frames each)"
    )
    ap.add_argument(
        "--rounds", type=int, default=5, help="interleaved rounds of every client (0: latency only)"
    )
    ap.add_argument("--probes", type=int, default=1500, help="tick-to-order probes")
    ap.add_argument("--gap-ms", type=float, default=5.0, help="quiet between probes")
    ap.add_argument("--latency-runs", type=int, default=1)
    ap.add_argument(
        "--log-level",
        choices=("warning", "info"),
        default="warning",
        help="the clients' logging: warning (no line per order) or info, the daemon's default"
        " (each line rendered and written to a file, as the daemon does)",
    )
    ap.add_argument("--port", type=int, default=0, help="0: a free port")
    ap.add_argument("--json", help="also write every run's figures here")
    ap.add_argument(
        "--before",
        metavar="PYTHONPATH",
        help="also run the tradingd client (and the latency) on the code this PYTHONPATH imports as"
        " `tradingd`, interleaved with the current code (a before/after comparison)",
    )
    ap.add_argument(
        "--before-python",
        metavar="PYTHON",
        help="the same, with the code this interpreter imports (another worktree's venv: with an"
        " editable install `tradingd` comes from the tree the venv was installed from, whatever"
        " PYTHONPATH says, unless PYTHONPATH holds a `tradingd/` package of its own)",
    )
    ap.add_argument(
        "--metrics",
        action="store_true",
        help="only the daemon's burst without [metrics] and with them (scraped), interleaved --rounds times",
    )
    ap.add_argument("--scrape-s", type=float, default=1.0, help="with --metrics: seconds between scrapes")
    ap.add_argument(
        "--client",
        choices=(
            *("bare", "bare-q", "tradingd", "decode", "drain", "latency", "echo"),
            *("daemon", "daemon-metrics"),
        ),
    )
    ap.add_argument("--profile", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client:
        print(json.dumps(client(args)), flush=True)
        return
    gen, port = start_generator(args.port)
    runs: dict[str, list[dict[str, Any]]] = {}
    if args.metrics:
        try:
            for r in range(args.rounds):
                for kind in ("daemon", "daemon-metrics")[:: 1 if r % 2 == 0 else -1]:
                    runs.setdefault(kind, []).append(run_client(kind, port, args))
        finally:
            gen.terminate()
            gen.wait(10)
        report_metrics(runs, args)
        if args.json:
            Path(args.json).write_text(json.dumps(runs, indent=1))
        return
    try:
        kinds = ["bare", "bare-q", "tradingd", "decode"]
        before = bool(args.before or args.before_python)
        if before:
            kinds.insert(3, "tradingd-before")
        if args.rounds:
            runs["drain"] = [run_client("drain", port, args)]
            for r in range(args.rounds):
                for kind in kinds if r % 2 == 0 else kinds[::-1]:
                    runs.setdefault(kind, []).append(run_client(kind, port, args))
            runs["drain"].append(run_client("drain", port, args))
        lat_kinds = ["echo", "latency", "latency-before"][: 3 if before else 2]
        for r in range(args.latency_runs):
            for kind in lat_kinds[:: 1 if r % 2 == 0 else -1]:
                runs.setdefault(kind, []).append(run_client(kind, port, args))
    finally:
        gen.terminate()
        gen.wait(10)
    report(runs, args)


def report(runs: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> None:
    if "tradingd" in runs:
        report_cpu(runs)
    for kind, what in (
        ("latency", ""),
        ("latency-before", "before (--before): "),
        ("echo", "floor (a bare trio-websocket client answering the same tickers): "),
    ):
        for lat in runs.get(kind, []):
            extra = f"; {lat['probes']} probes, {args.gap_ms:g} ms apart"
            extra += f"; client CPU {lat['cpu_us_per_probe']:.0f} us a probe"
            read = lat.get("read_us", {})
            if read.get("median") is not None:
                extra += f"; read by the generator: median {read['median']:.0f}, p99 {read['p99']:.0f}"
            print(what + latency_line(lat["latency_us"], extra))
    for kind in ("latency", "latency-before", "echo"):
        got = runs.get(kind, [])
        if len(got) > 1:
            med = {k: statistics.median(r["latency_us"][k] for r in got) for k in ("median", "p99")}
            cpu = statistics.median(r["cpu_us_per_probe"] for r in got)
            print(
                f"{kind}, median of {len(got)} runs: median {med['median']:.0f} us,"
                f" p99 {med['p99']:.0f} us, client CPU {cpu:.0f} us a probe"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=1))


def report_metrics(runs: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> None:
    """`--metrics`: events/s and client CPU per frame, without and with `[metrics]`, medians."""
    med: dict[str, tuple[float, float]] = {}
    for kind, what in (("daemon", "without [metrics]"), ("daemon-metrics", "with [metrics]")):
        got = runs[kind]
        rates = [r["events"] / r["wall_s"] for r in got]
        cpus = [per_frame_us(r) for r in got]
        med[kind] = (statistics.median(rates), statistics.median(cpus))
        extra = ""
        if kind == "daemon-metrics":
            scrapes = statistics.median(r["scrapes"] for r in got)
            size = statistics.median(r["scrape_bytes"] for r in got)
            extra = f"; {scrapes:.0f} scrapes a burst (every {args.scrape_s:g} s), {size / 1000:.1f} kB each"
        print(
            f"daemon {what}: {med[kind][0]:,.0f} events/s, {med[kind][1]:.2f} us of CPU per frame"
            f" (medians of {len(got)}; events/s {', '.join(f'{x:,.0f}' for x in rates)};"
            f" us/frame {', '.join(f'{x:.2f}' for x in cpus)}{extra})"
        )
    (off_rate, off_cpu), (on_rate, on_cpu) = med["daemon"], med["daemon-metrics"]
    print(
        f"[metrics] on: events/s {on_rate / off_rate - 1:+.1%}, CPU per frame {on_cpu / off_cpu - 1:+.1%}"
        f" ({runs['daemon'][0]['events']:,} events from {runs['daemon'][0]['frames']:,} frames a burst)"
    )


def report_cpu(runs: dict[str, list[dict[str, Any]]]) -> None:
    med = {
        k: statistics.median(per_frame_us(r) for r in v)
        for k, v in runs.items()
        if k not in ("drain", "echo") and "latency" not in k
    }
    frames = runs["tradingd"][0]["frames"]
    best_drain = min(runs["drain"], key=lambda r: r["wall_s"])
    server_us = statistics.median(per_frame_us(r["server"]) for r in runs["tradingd"] + runs["bare"])
    print(
        f"load generator: {frames:,} frames a burst ({best_drain['bytes'] / 1e6:.1f} MB); to a client"
        f" that only reads bytes: {best_drain['frames'] / best_drain['wall_s']:,.0f} frames/s (wall, best of"
        f" {len(runs['drain'])}); its own CPU {server_us:.2f} us per frame sent"
        f" = a ceiling of {1e6 / server_us:,.0f} frames/s on one core"
    )
    for kind in ("bare", "bare-q"):
        figs = ", ".join(f"{per_frame_us(r):.1f}" for r in runs[kind])
        print(f"{kind} trio-websocket client: {med[kind]:.1f} us of CPU per frame (median; runs {figs})")
    reference = min(med["bare"], med["bare-q"])
    t = runs["tradingd"]
    figs = ", ".join(f"{per_frame_us(r):.1f}" for r in t)
    per = med["tradingd"]
    decoder = statistics.median(per_frame_us(r, "decoder_cpu_s") for r in runs["decode"])
    print(
        f"client cost: {per:.1f} us of CPU per frame (connection, decode, router, strategy)"
        f" = room for {1e6 / per:,.0f} frames/s on one core (median; runs {figs})"
    )
    print(
        f"ratio to the bare trio-websocket client: {per / reference:.2f}"
        f" (goal <= 2; reference {reference:.1f} us)"
    )
    print(
        f"decoder alone on the same frames: {decoder:.1f} us per frame"
        f" ({decoder / per:.0%} of the client's cost)"
    )
    last = t[-1]
    print(
        f"throughput: {last['events']:,} events from {last['frames']:,} frames in {last['wall_s']:.2f} s"
        f" = {last['events'] / last['wall_s']:,.0f} events/s into the strategy"
        f" (conflated/merged {last['conflated']:,}, malformed {last['malformed']}; wall time, last run)"
    )
    if "tradingd-before" in runs:
        figs = ", ".join(f"{per_frame_us(r):.1f}" for r in runs["tradingd-before"])
        print(
            f"before (--before): client cost {med['tradingd-before']:.1f} us of CPU per frame"
            f" (median; runs {figs}),"
            f" ratio {med['tradingd-before'] / reference:.2f}"
        )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
