"""The command line: every command, its output contract, and one-line errors with exit codes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import structlog

from tradingd.cli.main import main
from tradingd.engine.logs.tail import parse_time
from tradingd.engine.store.recording import RecordingWriter
from tradingd.simulators.deribit import SIMULATOR as DERIBIT_SIM

FIXTURES = Path(__file__).parent.parent / "fixtures" / "deribit"


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def compact(name: str) -> bytes:
    return orjson.dumps(orjson.loads((FIXTURES / name).read_bytes()))


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in ("backtest", "decode", "check-config", "generate"):
        assert command in out
    assert main([]) == 2


def test_check_config(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["check-config", "config/backtest.toml"]) == 0
    assert "OK: mode backtest" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text('mode = "backtest"\n[backtest]\ndata = []\n[[strategies]]\nname = "x"\nclass = "nope"\n')
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    # Both of its mistakes, one per line below the count (no traceback).
    assert err.splitlines()[0] == f"tradingd: error: {bad}: 2 problems:" and "Traceback" not in err
    assert err.splitlines()[1].startswith("  strategies[0].class: unknown strategy 'nope'")
    assert err.splitlines()[2:] == ["  backtest.data: list at least one [[backtest.data]] file"]
    assert main(["check-config", str(tmp_path / "missing.toml")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_decode_frames_to_contract_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    frames = tmp_path / "frames.jsonl"
    frames.write_bytes(
        b"\n".join(
            [
                compact("ws_ticker.json"),
                compact("ws_book_snapshot.json"),
                compact("ws_book_delta.json"),
                b"{not json",
                compact("ws_trades.json"),
                compact("ws_volatility_index.json"),
                compact("ws_test_request.json"),
            ]
        )
    )
    assert main(["decode", "--venue", "deribit", str(frames)]) == 1  # one line was bad
    out, err = capsys.readouterr()
    events = [orjson.loads(line) for line in out.splitlines()]
    assert [e["type"] for e in events] == ["ticker", "book", "book", "trade", "trade"]
    for e in events:
        assert e["venue"] == "deribit" and isinstance(e["ts_local"], int)
    ticker = events[0]
    assert ticker["instrument"] == "BTC-PERPETUAL" and ticker["bid"] == 92283.5 and ticker["greeks"] is None
    assert ticker["ts_exchange"] == 1765541474086 * 1_000_000
    delta = events[2]
    assert delta["snapshot"] is False and delta["sequence"] == 123456790
    assert delta["best_ask"] == 42501.5 and delta["asks"][0] == [42501.0, 0.0]
    assert events[3]["side"] == "sell" and events[3]["trade_id"] == "403691824"
    assert "line 4: malformed frame" in err
    assert "line 6: unknown channel 'deribit_volatility_index.btc_usd'" in err
    assert "1 line(s) could not be decoded" in err


def test_decode_takes_bare_text_frames(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    frames = tmp_path / "pm.txt"
    frames.write_bytes(b"PONG\n")  # Polymarket's keepalive answer: a text frame, not JSON
    assert main(["decode", "--venue", "polymarket", str(frames)]) == 0
    assert capsys.readouterr().out == ""


def test_decode_reads_recordings_and_stdin(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = tmp_path / "r.rec.zst"
    with RecordingWriter(rec) as w:
        w.write(1_795_478_400_123_456_700, compact("ws_quote.json"))
    assert main(["decode", "--venue", "deribit", str(rec)]) == 0
    (event,) = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert event["ts_local"] == 1_795_478_400_123_456_700 and event["ask"] == 92288.5
    assert main(["decode", "--venue", "nope", str(rec)]) == 2
    assert "unknown venue 'nope'" in capsys.readouterr().err
    assert main(["decode", "--venue", "deribit", str(tmp_path / "missing")]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_data_inspect_says_its_times_as_iso_8601_to_the_microsecond(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`data inspect` printed the recording lines' own 7 decimals (`00:00:00.1234567Z`), which no
    tool expects; it now says what the logs' `ts` says (ISO 8601 UTC, microseconds), which
    `--since` and `datetime.fromisoformat` read, in its text and its --json alike."""
    rec = tmp_path / "r.rec"
    with RecordingWriter(rec) as w:
        w.write(1_795_478_400_123_456_789, compact("ws_quote.json"))
        w.write(1_795_485_599_999_999_999, compact("ws_quote.json"))
    first, last = "2026-11-24T00:00:00.123456Z", "2026-11-24T01:59:59.999999Z"
    assert main(["data", "inspect", "--venue", "deribit", "--no-progress", str(rec)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"{rec} (deribit, recording): {first} -> {last}"
    assert main(["data", "inspect", "--venue", "deribit", "--json", str(rec)]) == 0
    info = orjson.loads(capsys.readouterr().out)
    assert (info["first"], info["last"]) == (first, last)
    when = parse_time(first)
    assert when == dt.datetime.fromisoformat(first) and when.microsecond == 123_456


def test_backtest_writes_the_report(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = tmp_path / "s.rec.zst"
    DERIBIT_SIM.generate_sample(data, {"hours": 0.1, "seed": 5})
    cfg = tmp_path / "bt.toml"
    text = Path("config/backtest-deribit.toml").read_text()
    cfg.write_text(text.replace('path = "../data/deribit-sample.rec.zst"', f'path = "{data}"'))
    report = tmp_path / "out" / "report.json"
    assert main(["backtest", "--config", str(cfg), "--report", str(report)]) == 0
    out = capsys.readouterr().out
    assert "gamma_btc" in out and "momentum_eth" in out and "events/s" in out
    r = orjson.loads(report.read_bytes())
    assert r["events"] > 10_000 and isinstance(r["duration_s"], float)
    for s in r["strategies"].values():
        for key in ("orders", "fills", "fees", "realized_pnl", "unrealized_pnl", "max_drawdown", "sharpe"):
            assert key in s
    data.unlink()
    missing = cfg.read_text().replace("generate = { seed = 7, hours = 2.0 }", "")
    cfg.write_text(missing)
    assert main(["backtest", "--config", str(cfg)]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_generate(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "g.rec.gz"
    assert main(["generate", "--venue", "deribit", "--out", str(out), "--hours", "0.01", "--seed", "2"]) == 0
    assert out.exists() and "frames" in capsys.readouterr().err
    assert main(["generate", "--venue", "deribit", "--out", str(out), "--hours", "-1"]) == 2


@pytest.mark.parametrize("port", ["99999", "-1"])
def test_simulate_refuses_a_port_outside_0_65535(capsys: pytest.CaptureFixture[str], port: str) -> None:
    with pytest.raises(SystemExit) as info:  # the parser's check: a usage line and exit 2
        main(["simulate", "deribit", "--port", port])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == (
        f"tradingd simulate: error: argument --port: expected a port 0-65535 (0: any free port), got '{port}'"
    )
