"""The methods a Deribit client calls first (`public/hello`, `public/status`,
`public/get_index_price`, `public/get_book_summary_by_currency`), judged by clients nobody here
wrote: ccxt's REST client (its `fetch_status`, `fetch_tickers`, `fetch_option_chain` parse them)
and a plain WebSocket (the `websockets` library) speaking JSON-RPC, against the simulator served
on 127.0.0.1. The market is stepped by the test, not by the clock, so what the clients read can
be compared with the simulator's own state exactly."""

from __future__ import annotations

import functools
import json
from decimal import Decimal
from typing import Any

import trio

from tradingd.simulators.deribit import public_methods
from tradingd.simulators.deribit.simulator import DeribitSimulator, serve

_STILL = 3600.0  # a step period no test outlives: the market moves only when the test steps it


async def _serving(nursery: trio.Nursery, steps: int = 100) -> tuple[DeribitSimulator, str]:
    simulator = DeribitSimulator(seed=11, step_s=_STILL)
    market: public_methods.Market = simulator  # the simulator has what the methods read (mypy)
    assert market.instrument_items
    for _ in range(steps):  # every instrument has published a ticker by now
        simulator.step()
    binds = await nursery.start(functools.partial(serve, simulator))
    return simulator, binds[0].removeprefix("http://")


def _ccxt_session(base: str) -> dict[str, Any]:
    import ccxt

    exchange = ccxt.deribit({"enableRateLimit": False})
    exchange.urls["api"] = {"rest": f"http://{base}", "ws": f"ws://{base}/ws/api/v2"}
    exchange.load_markets()
    return {
        "status": exchange.fetch_status(),
        "hello": exchange.public_get_hello({"client_name": "judge", "client_version": "1.0"}),
        "index": exchange.public_get_get_index_price({"index_name": "btc_usd"}),
        "summaries": exchange.public_get_get_book_summary_by_currency({"currency": "BTC"}),
        "tickers": exchange.fetch_tickers(params={"code": "BTC"}),
        "chain": exchange.fetch_option_chain("ETH"),
    }


def _top(simulator: DeribitSimulator, name: str) -> tuple[float | None, float | None]:
    """The best bid and ask of the simulator's book as a summary (and ccxt) has them: None for
    an empty side."""
    top = simulator.top(name)
    assert top is not None
    bid, bid_amount, ask, ask_amount = top
    return (float(bid) if bid_amount else None, float(ask) if ask_amount else None)


async def test_ccxt_reads_the_first_methods_over_rest(nursery: trio.Nursery) -> None:
    simulator, base = await _serving(nursery)
    with trio.fail_after(20):
        out = await trio.to_thread.run_sync(_ccxt_session, base)
    tickers = simulator.tickers
    assert out["status"]["status"] == "ok"
    assert out["status"]["info"]["result"] == {"locked": "false", "locked_indices": []}
    assert out["hello"]["result"] == {"version": "1.2.26"}
    # A REST GET carries no id, so neither does its answer (as Deribit's, e.g. the answers
    # ccxt quotes in its fetch_status / fetch_tickers); never `"id": null`.
    for answer in (out["status"]["info"], out["hello"], out["index"], out["summaries"]):
        assert "id" not in answer and answer["jsonrpc"] == "2.0" and "usOut" in answer
    index = float(simulator.index_prices["btc_usd"])  # as deribit_price_index.btc_usd has it
    assert out["index"]["result"] == {"index_price": index, "estimated_delivery_price": index}
    btc = [i["instrument_name"] for i in simulator.instrument_items if i["settlement_currency"] == "BTC"]
    summaries = {s["instrument_name"]: s for s in out["summaries"]["result"]}
    assert sorted(summaries) == sorted(btc) and len(btc) == 17
    for name, summary in summaries.items():
        t = tickers[name]
        assert (summary["bid_price"], summary["ask_price"]) == _top(simulator, name)
        assert summary["mark_price"] == t["mark_price"] and summary["last"] == t["last_price"]
        assert summary["open_interest"] == t["open_interest"] and summary["volume"] == t["stats"]["volume"]
        assert summary["base_currency"] == "BTC" and summary["creation_timestamp"] > 0
        if name.endswith(("-C", "-P")):
            assert summary["mark_iv"] == t["mark_iv"] and summary["underlying_index"] == "index_price"
            assert summary["underlying_price"] == t["underlying_price"] and "current_funding" not in summary
        else:
            assert summary["current_funding"] == t["current_funding"]
            assert summary["funding_8h"] == t["funding_8h"] and "mark_iv" not in summary
    # ccxt's own parse of the summaries: one ticker per BTC instrument, its bid/ask the simulator's.
    parsed = out["tickers"]
    assert len(parsed) == 17
    for ticker in parsed.values():
        t = tickers[ticker["info"]["instrument_name"]]
        assert (ticker["bid"], ticker["ask"]) == _top(simulator, t["instrument_name"])
        assert ticker["last"] == t["last_price"]
        # ccxt dates a ticker by the summary's `creation_timestamp`: made when asked (ms).
        asked = summaries[t["instrument_name"]]["creation_timestamp"]
        assert asked <= ticker["timestamp"] < asked + 20_000
    chain = out["chain"]
    eth_options = [i["instrument_name"] for i in simulator.instrument_items if i["kind"] == "option"]
    eth_options = [n for n in eth_options if n.startswith("ETH-")]
    assert sorted(o["info"]["instrument_name"] for o in chain.values()) == sorted(eth_options)
    for option in chain.values():
        t = tickers[option["info"]["instrument_name"]]
        assert option["markPrice"] == t["mark_price"] and option["underlyingPrice"] == t["underlying_price"]


def _ws_session(base: str) -> list[dict[str, Any]]:
    from websockets.sync.client import connect

    requests = [
        ("public/hello", {"client_name": "judge", "client_version": "1.0"}),
        ("public/status", {}),
        ("public/get_index_price", {"index_name": "eth_usd"}),
        ("public/get_book_summary_by_currency", {"currency": "ETH", "kind": "future"}),
        ("public/get_book_summary_by_currency", {"currency": "USDC"}),
        ("public/get_book_summary_by_currency", {"currency": "ETH", "kind": "option"}),
        # Refused as Deribit refuses them: -32602 naming the parameter.
        ("public/get_index_price", {"index_name": "doge_jpy"}),
        ("public/get_book_summary_by_currency", {"currency": "XYZ"}),
        ("public/get_book_summary_by_currency", {"currency": "BTC", "kind": "perpetual"}),
        ("public/hello", {"client_name": "judge"}),
    ]
    answers = []
    with connect(f"ws://{base}/ws/api/v2") as ws:
        for rid, (method, params) in enumerate(requests, start=100):
            ws.send(json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}))
            answers.append(json.loads(ws.recv(timeout=5)))
    return answers


async def test_the_first_methods_answer_over_websocket(nursery: trio.Nursery) -> None:
    simulator, base = await _serving(nursery)
    # An option nobody quotes (the `no_quotes` switch): its summary's bid, ask and mid are null.
    unquoted = next(
        i["instrument_name"]
        for i in simulator.instrument_items
        if i["kind"] == "option" and i["instrument_name"].startswith("ETH-")
    )
    simulator.apply_faults({"no_quotes": {"instrument": unquoted, "side": "both"}})
    with trio.fail_after(20):
        answers = await trio.to_thread.run_sync(_ws_session, base)
    assert [a["id"] for a in answers] == list(range(100, 110))
    hello, status, index, futures, usdc, options, *refused = answers
    assert hello["result"] == {"version": "1.2.26"}
    assert status["result"] == {"locked": "false", "locked_indices": []}
    perpetual = simulator.tickers["ETH-PERPETUAL"]
    assert index["result"]["index_price"] == float(simulator.index_prices["eth_usd"])
    assert [s["instrument_name"] for s in futures["result"]] == ["ETH-PERPETUAL"]
    summary = futures["result"][0]
    bid, ask = _top(simulator, "ETH-PERPETUAL")
    assert bid is not None and ask is not None
    # The middle of the two prices, then written as a JSON number: (3050.6 + 3050.7) / 2 in floats
    # is 3050.6499999999996, which no venue writes (the prices are decimal ticks).
    mid = float((Decimal(repr(bid)) + Decimal(repr(ask))) / 2)
    assert (summary["bid_price"], summary["ask_price"], summary["mid_price"]) == (bid, ask, mid)
    assert summary["volume_usd"] == perpetual["stats"]["volume_usd"]
    assert usdc["result"] == []  # a currency Deribit has, in which the simulator lists nothing
    by_name = {s["instrument_name"]: s for s in options["result"]}
    assert len(by_name) == 16 and all(s["mark_iv"] > 0 for s in by_name.values())
    assert [by_name[unquoted][k] for k in ("bid_price", "ask_price", "mid_price")] == [None, None, None]
    for name, summary in by_name.items():
        assert (summary["bid_price"], summary["ask_price"]) == _top(simulator, name)
    assert [(r["error"]["code"], r["error"]["data"]["param"]) for r in refused] == [
        (-32602, "index_name"),
        (-32602, "currency"),
        (-32602, "kind"),
        (-32602, "client_version"),
    ]


def _rest_calls(base: str) -> list[tuple[int, dict[str, Any]]]:
    import requests

    api = f"http://{base}/api/v2"
    refused = requests.get(f"{api}/public/get_index_price", params={"index_name": "nope"}, timeout=5)
    body = {"jsonrpc": "2.0", "id": 7, "method": "public/status", "params": {}}
    posted = requests.post(f"{api}/public/status", json=body, timeout=5)
    return [(refused.status_code, refused.json()), (posted.status_code, posted.json())]


async def test_rest_answers_carry_the_requests_id_or_none(nursery: trio.Nursery) -> None:
    _, base = await _serving(nursery, steps=1)
    with trio.fail_after(10):
        (status, refused), (posted_status, posted) = await trio.to_thread.run_sync(_rest_calls, base)
    assert status == 400  # VENUES.md §1.2: the error body with status 400 over HTTP
    assert "id" not in refused and refused["error"]["code"] == -32602
    # A JSON-RPC body sent by POST has an id: the answer echoes it.
    assert posted_status == 200 and posted["id"] == 7 and posted["result"]["locked"] == "false"
