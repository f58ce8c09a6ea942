"""Errors a new user meets in the first hour, each one clear line on stderr (issue 16): a port
out of range or taken, a corrupt or mislabelled `.zst`, an output path that cannot be written, a
Ctrl-C while the command line starts, another venue's data given to `decode`."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog
import zstandard

from tradingd.cli.main import main
from tradingd.engine.store.recording import RecordingWriter
from tradingd.simulators.deribit import SIMULATOR as DERIBIT_SIM

FIXTURES = Path(__file__).parent.parent / "fixtures" / "deribit"
_SCRIPT = shutil.which("tradingd", path=str(Path(sys.executable).parent))


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def _run(argv: list[str], capfd: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # the parser's own usage errors
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capfd.readouterr()
    return code, out, err


def _quotes(path: Path, n: int) -> None:
    """A Deribit recording of `n` quote frames (one ticker event each), zstd with a checksum."""
    frame = orjson.dumps(orjson.loads((FIXTURES / "ws_quote.json").read_bytes()))
    with RecordingWriter(path) as w:
        for i in range(n):
            w.write(1_795_478_400_000_000_000 + i * 1_000_000, frame)


@pytest.fixture(scope="module")
def deribit_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """36 s of the synthetic Deribit market (about 1,600 frames)."""
    path = tmp_path_factory.mktemp("sample") / "deribit.rec.zst"
    DERIBIT_SIM.generate_sample(path, {"hours": 0.01, "seed": 3})
    return path


# ----------------------------------------------------------------------------- simulate --port


@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_simulate_port_out_of_range_is_a_usage_line(capfd: pytest.CaptureFixture[str], port: str) -> None:
    code, _, err = _run(["simulate", "deribit", "--port", port], capfd)
    assert code == 2
    assert err.splitlines()[-1] == (
        f"tradingd simulate: error: argument --port: expected a port 0-65535 (0: any free port), got '{port}'"
    )
    assert "Traceback" not in err and "Group" not in err


def test_simulate_on_a_port_in_use_names_host_and_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run(
            [sys.executable, "-m", "tradingd.cli.console", "simulate", "deribit", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert r.returncode == 2, r.stderr
    (line,) = r.stderr.splitlines()
    assert line.startswith(f"tradingd: error: cannot listen on 127.0.0.1:{port}: ")
    assert "in use" in line


# ---------------------------------------------------------------------------- decode a bad .zst


def test_decode_of_a_file_that_is_not_zstd_is_one_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    noise = tmp_path / "x.zst"
    noise.write_bytes(bytes(range(256)) * 20)
    code, out, err = _run(["decode", "--venue", "deribit", str(noise)], capfd)
    assert (code, out) == (1, "")
    not_zstd = f"tradingd: error: {noise}: not a zstd file (it starts with b'\\x00\\x01\\x02\\x03')"
    assert err.splitlines() == [not_zstd]
    text = tmp_path / "frames.jsonl.zst"
    text.write_bytes(b'{"jsonrpc":"2.0"}\n')
    code, _, err = _run(["decode", "--venue", "deribit", str(text)], capfd)
    assert code == 1
    assert err.splitlines() == [
        f"tradingd: error: {text}: not a zstd file (it is plain text: name it without the suffix)"
    ]
    # `data inspect` reads through the same opener: the same line.
    code, _, err = _run(["data", "inspect", "--venue", "deribit", str(noise)], capfd)
    assert code == 1 and err.splitlines() == [not_zstd]


def test_decode_names_a_frame_it_cannot_read_once(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """A line that is not JSON is "malformed frame: not JSON (...)": the reason's own "frame: "
    (every venue's, since its wording was unified) is not said twice ("malformed frame: frame:
    not JSON", which a newcomer met); a reason naming a channel keeps it."""
    good = (
        b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"trades.BTC-PERPETUAL.100ms",'
        b'"data":[{"trade_id":"1","timestamp":1,"price":90000.5,"amount":10,"direction":"sell",'
        b'"instrument_name":"BTC-PERPETUAL"}]}}'
    )
    bad_price = good.replace(b"90000.5", b'"abc"')
    frames = tmp_path / "frames.jsonl"
    frames.write_bytes(b"\n".join([good, good[:40], b"xyz", bad_price, good]) + b"\n")
    code, out, err = _run(["decode", "--venue", "deribit", str(frames)], capfd)
    assert code == 1 and len(out.splitlines()) == 2
    lines = err.splitlines()
    assert "line 2: malformed frame: not JSON (Input data was truncated)" in lines, lines
    assert "line 3: malformed frame: not JSON (JSON is malformed: invalid character (byte 0))" in lines, lines
    channel = "line 4: malformed frame: trades.BTC-PERPETUAL.100ms: Expected"
    assert any(line.startswith(channel) for line in lines), lines
    assert not any("frame: frame:" in line for line in lines), lines


def test_decode_of_a_corrupt_zst_decodes_up_to_the_break_and_names_the_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    rec = tmp_path / "corrupt.rec.zst"
    _quotes(rec, 60_000)
    data = bytearray(rec.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)
    rec.write_bytes(bytes(data))
    code, out, err = _run(["decode", "--venue", "deribit", str(rec)], capfd)
    assert code == 1
    (line,) = err.splitlines()
    m = re.fullmatch(
        rf"line (\d+): {re.escape(str(rec))}: unreadable from here on \(.+\);"
        r" the (\d+) line\(s\) before it were decoded",
        line,
    )
    assert m is not None, line
    stopped = int(m[1])
    assert int(m[2]) == stopped - 1 == len(out.splitlines())
    assert 1_000 < stopped < 60_000


def test_decode_of_a_truncated_zst_is_one_line_and_no_malformed_frame(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    rec = tmp_path / "cut.rec.zst"
    _quotes(rec, 60_000)
    data = rec.read_bytes()
    rec.write_bytes(data[: len(data) // 2])
    code, out, err = _run(["decode", "--venue", "deribit", str(rec)], capfd)
    (line,) = err.splitlines()  # the torn last line is no "malformed frame"
    m = re.fullmatch(
        rf"{re.escape(str(rec))}: ends inside a zstd frame \(still being written, or cut short\):"
        r" decoded up to its last complete block, line (\d+)",
        line,
    )
    assert m is not None, line
    assert code == 0
    assert len(out.splitlines()) == int(m[1]) > 1_000


# -------------------------------------------------------------------------- generate --out


def test_generate_to_an_unwritable_path_is_one_line_before_generating(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Any] = []

    def generate_sample(*args: Any, **kwargs: Any) -> int:
        calls.append(args)
        return 0

    monkeypatch.setattr(DERIBIT_SIM, "generate_sample", generate_sample)
    code, out, err = _run(["generate", "--venue", "deribit", "--out", "/proc/x.rec.zst"], capfd)
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        "tradingd: error: cannot write /proc/x.rec.zst:"
        " cannot create a file in /proc (No such file or directory)"
    ]
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    code, _, err = _run(["generate", "--venue", "deribit", "--out", str(a_file / "s" / "x.rec.zst")], capfd)
    assert code == 2
    assert err.splitlines() == [
        f"tradingd: error: cannot write {a_file / 's' / 'x.rec.zst'}: {a_file} is a file, not a folder"
    ]
    code, _, err = _run(["generate", "--venue", "deribit", "--out", str(tmp_path)], capfd)
    assert code == 2 and err.splitlines() == [f"tradingd: error: cannot write {tmp_path}: it is a folder"]
    assert calls == []  # nothing was generated
    assert not list(tmp_path.glob(".*probe"))  # the probe left nothing behind


# ----------------------------------------------------------------------- Ctrl-C while starting


# Put first on `sys.meta_path` by a `sitecustomize`: when the module named in the environment is
# about to be imported, it sends the process a SIGINT, whose handler raises KeyboardInterrupt
# there and then (`signal.raise_signal` runs it before returning): a Ctrl-C during the imports
# every time, however fast the machine. The marker file says it was sent.
_INTERRUPT_ON_IMPORT = """\
import os, signal, sys

class _InterruptOnImport:
    def find_spec(self, name, path=None, target=None):
        if name == os.environ["TRADINGD_TEST_INTERRUPT_ON"]:
            sys.meta_path.remove(self)
            open(os.environ["TRADINGD_TEST_INTERRUPTED"], "w").close()
            signal.raise_signal(signal.SIGINT)
        return None

sys.meta_path.insert(0, _InterruptOnImport())
# Python's own Ctrl-C handler, as in a terminal, even when the suite was started with SIGINT
# ignored (a background job, nohup), which a child inherits and which made the interrupt a no-op.
signal.signal(signal.SIGINT, signal.default_int_handler)
"""


def _interrupted_while_importing(script: str, module: str, tmp_path: Path) -> tuple[int, str]:
    """Exit status and stderr of `script decode --venue deribit` given a Ctrl-C just as `module`
    is imported."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(_INTERRUPT_ON_IMPORT)
    sent = tmp_path / "interrupted"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(hooks), os.environ.get("PYTHONPATH")) if p),
        "TRADINGD_TEST_INTERRUPT_ON": module,
        "TRADINGD_TEST_INTERRUPTED": str(sent),
    }
    proc = subprocess.run(
        [script, "decode", "--venue", "deribit"],
        stdin=subprocess.DEVNULL,  # decode reads an empty stdin: it ends by itself if never interrupted
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert sent.exists(), f"{module} was not imported: no interrupt was sent"
    return proc.returncode, proc.stderr.decode()


@pytest.mark.skipif(_SCRIPT is None, reason="the tradingd console script is not installed")
@pytest.mark.parametrize("module", ["tradingd.cli.main", "structlog", "tradingd.engine.model.events"])
def test_ctrl_c_while_the_command_line_starts_is_one_line_and_130(module: str, tmp_path: Path) -> None:
    """Importing the command line takes about half a second: a Ctrl-C then, when the script's
    `from tradingd.cli.main import main` ran outside any `try`, was a KeyboardInterrupt traceback
    (and death by SIGINT). The interrupt lands as the command line itself, one of the libraries it
    needs, one of tradingd's own modules is imported."""
    assert _SCRIPT is not None
    if "tradingd.cli.console" not in Path(_SCRIPT).read_text():
        pytest.fail(f"{_SCRIPT} predates cli/console.py: reinstall (pip install -e .)")
    assert _interrupted_while_importing(_SCRIPT, module, tmp_path) == (130, "tradingd: interrupted\n")


# --------------------------------------------------------------------- another venue's data


@pytest.mark.parametrize("venue", ["polymarket", "derive"])
def test_decode_of_another_venues_data_stops_and_says_whose_it_looks_like(
    venue: str, deribit_sample: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(["decode", "--venue", venue, str(deribit_sample)], capfd)
    assert code == 1
    assert out == ""  # in particular, no Deribit ticker labelled derive
    lines = err.splitlines()
    assert len(lines) == 22, lines  # 20 named, one count, the verdict
    assert re.fullmatch(r"\.\.\. and [\d,]+ more line\(s\) not named", lines[-2])
    assert lines[-1].startswith("stopped after line ")
    assert lines[-1].endswith(
        f"the {venue} decoder refused every line (200 of channels it does not read) and decoded"
        " nothing; they look like deribit's data (try --venue deribit)"
    )


@pytest.fixture(scope="module")
def prefixed_sample(deribit_sample: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Deribit sample behind 250 frames of a channel no installed decoder reads
    (`instrument.state`, which Deribit's decoder does not subscribe to either)."""
    frame = (
        b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"instrument.state.any.any",'
        b'"data":{"instrument_name":"BTC-X%d","state":"created","timestamp":1}}}'
    )
    path = tmp_path_factory.mktemp("prefixed") / "prefixed.rec"
    with zstandard.open(deribit_sample, "rb") as sample, path.open("wb") as rec:
        rec.writelines(b"2026-11-24T00:00:00Z " + frame % i + b"\n" for i in range(250))
        shutil.copyfileobj(sample, rec)
    return path


def test_decode_goes_on_past_200_frames_of_channels_no_venue_reads(
    deribit_sample: Path, prefixed_sample: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Frames of a channel the decoder does not read (250 of them ahead of the market) are the
    venue's own data, not a reason to stop: no other venue's decoder reads them, so `decode` goes
    on and decodes every event after them, exit 0, 20 lines named."""
    code, market, _ = _run(["decode", "--venue", "deribit", str(deribit_sample)], capfd)
    assert code == 0 and market
    code, out, err = _run(["decode", "--venue", "deribit", str(prefixed_sample)], capfd)
    assert code == 0
    assert out == market  # every event of the market, as without the prefix
    lines = err.splitlines()
    assert lines[:20] == [
        f"line {n}: unknown channel 'instrument.state.any.any' (not decoded)" for n in range(1, 21)
    ]
    # Counted apart from lines that could not be decoded (there are none: exit 0).
    assert lines[20:] == [
        "... and 230 more line(s) not named",
        "250 line(s) of channels the deribit decoder does not read (not decoded)",
    ]


@pytest.mark.parametrize("venue", ["polymarket", "derive"])
def test_decode_of_another_venues_data_behind_such_frames_still_stops(
    venue: str, prefixed_sample: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Going on past frames nobody reads, it asks again after twice as many refused lines: the
    Deribit market behind them, given as another venue's, still stops and says whose it is."""
    code, out, err = _run(["decode", "--venue", venue, str(prefixed_sample)], capfd)
    assert (code, out) == (1, "")
    lines = err.splitlines()
    assert len(lines) == 22, lines  # 20 named, one count, the verdict
    assert lines[-1].startswith("stopped after line ")
    assert lines[-1].endswith("decoded nothing; they look like deribit's data (try --venue deribit)")


def test_decode_of_200_lines_that_are_no_frames_stops(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Lines that are no frames, or malformed ones, that no venue reads: it stops after 200."""
    path = tmp_path / "notes.txt"
    path.write_bytes(b"{not a frame\n" * 150 + b"2026-11-24 noon: not a recording line\n" * 150)
    code, out, err = _run(["decode", "--venue", "deribit", str(path)], capfd)
    assert (code, out) == (1, "")
    lines = err.splitlines()
    assert lines[20:-1] == ["... and 180 more line(s) not named"]
    assert lines[-1].startswith(
        "stopped after line 200: the deribit decoder refused every line (200 not decodable) and"
        " decoded nothing; no other installed venue's decoder reads them either ("
    )
    assert lines[-1].endswith("): are they frames?")


def test_decode_names_at_most_20_bad_lines_and_counts_the_rest(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Past the first lines, when something was decoded, it goes on to the end (a bad frame is
    that frame's problem), naming 20 and counting the rest."""
    good = orjson.dumps(orjson.loads((FIXTURES / "ws_quote.json").read_bytes()))
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join([good, *[b"{broken"] * 500, good]) + b"\n")
    code, out, err = _run(["decode", "--venue", "deribit", str(path)], capfd)
    assert code == 1 and len(out.splitlines()) == 2
    lines = err.splitlines()
    assert lines[0].startswith("line 2: malformed frame") and lines[19].startswith("line 21: malformed")
    assert lines[20:] == ["... and 480 more line(s) not named", "500 line(s) could not be decoded"]


def test_decode_of_lines_no_venue_reads_says_so(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"{not a frame\n" * 3)
    code, _, err = _run(["decode", "--venue", "deribit", str(path)], capfd)
    assert code == 1
    assert err.splitlines()[-1].startswith(
        "3 line(s) could not be decoded; no other installed venue's decoder reads them either ("
    )


# ------------------------------------------------------------- a venue's frames with a bad number


def _ticker_with_bid(bid: bytes) -> bytes:
    """Deribit's captured ticker frame (compact), its best bid replaced by `bid` as written."""
    frame = orjson.dumps(orjson.loads((FIXTURES / "ws_ticker.json").read_bytes()))
    assert frame.count(b'"best_bid_price":92283.5') == 1
    return frame.replace(b'"best_bid_price":92283.5', b'"best_bid_price":' + bid)


@pytest.mark.parametrize(
    ("bid", "reason"),
    [
        (
            b'"abc"',
            "ticker.BTC-PERPETUAL.100ms: Expected 'float | null', got 'str' - at '$.best_bid_price'",
        ),
        (b"NaN", "not JSON (NaN at byte {at}: JSON has no NaN or Infinity)"),
    ],
)
def test_decode_says_the_venue_refused_its_own_frames_with_a_bad_number(
    bid: bytes, reason: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Deribit ticker frames with one bad number are Deribit's frames: the count of lines that
    could not be decoded says the decoder refused their content, and why (its reason for the
    first), not "no other installed venue's decoder reads them either: are they frames?"."""
    frame = _ticker_with_bid(bid)
    reason = reason.format(at=frame.index(b"NaN") if bid == b"NaN" else 0)
    path = tmp_path / "tickers.jsonl"
    path.write_bytes(b"\n".join([frame] * 3) + b"\n")
    code, out, err = _run(["decode", "--venue", "deribit", str(path)], capfd)
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        *(f"line {n}: malformed frame: {reason}" for n in (1, 2, 3)),
        f"3 line(s) could not be decoded; they are frames whose content the deribit decoder refused"
        f" (line 1: {reason})",
    ]


def test_decode_says_which_lines_were_its_venues_frames_when_others_are_no_frames(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Refused frames of the venue beside lines that are no frames at all: the count says how many
    of each, with the decoder's reason for the first frame, not "are they frames?" (which it said
    when the frames were not most of the lines)."""
    bad = _ticker_with_bid(b'"abc"')
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join([bad, b"nope", b"1795478400000000000 [", bad, b"42"]) + b"\n")
    code, out, err = _run(["decode", "--venue", "deribit", str(path)], capfd)
    assert (code, out) == (1, "")
    reason = "ticker.BTC-PERPETUAL.100ms: Expected 'float | null', got 'str' - at '$.best_bid_price'"
    assert err.splitlines()[-1] == (
        f"5 line(s) could not be decoded; 2 of them are frames whose content the deribit decoder"
        f" refused (line 1: {reason}), the other 3 are no frames (neither a JSON object nor an array)"
    )


def test_decode_stops_on_its_venues_frames_and_other_lines_refused_and_says_which(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """200 lines refused in a row, a third of them the venue's frames: where it stops it says so."""
    bad = _ticker_with_bid(b'"abc"')
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in [bad, b"nope", b"nah"] * 90))
    code, out, err = _run(["decode", "--venue", "deribit", str(path)], capfd)
    assert (code, out) == (1, "")
    assert err.splitlines()[-1] == (
        "stopped after line 200: the deribit decoder refused every line (200 not decodable) and"
        " decoded nothing; 67 of them are frames whose content it refused (line 1:"
        " ticker.BTC-PERPETUAL.100ms: Expected 'float | null', got 'str' - at '$.best_bid_price'),"
        " the other 133 are no frames (neither a JSON object nor an array)"
    )


def test_decode_stops_on_200_of_its_venues_frames_it_refused_and_says_why(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """200 refused in a row, nothing decoded, no other venue reads them: it stops, saying they
    are frames whose content the decoder refused (not "are they frames?")."""
    path = tmp_path / "tickers.jsonl"
    path.write_bytes((_ticker_with_bid(b'"abc"') + b"\n") * 250)
    code, out, err = _run(["decode", "--venue", "deribit", str(path)], capfd)
    assert (code, out) == (1, "")
    assert err.splitlines()[-1] == (
        "stopped after line 200: the deribit decoder refused every line (200 not decodable) and"
        " decoded nothing; they are frames whose content it refused (line 1:"
        " ticker.BTC-PERPETUAL.100ms: Expected 'float | null', got 'str' - at '$.best_bid_price')"
    )


def test_decode_counts_unread_channels_apart_from_lines_it_could_not_decode(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The last lines count the frames of channels the decoder does not read (no error) apart
    from the lines that could not be decoded (the exit status's reason), each with its own words."""
    good = orjson.dumps(orjson.loads((FIXTURES / "ws_quote.json").read_bytes()))
    unread = orjson.dumps(orjson.loads((FIXTURES / "ws_volatility_index.json").read_bytes()))
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join([good, unread, b"nope", unread, _ticker_with_bid(b'"abc"'), good]) + b"\n")
    code, out, err = _run(["decode", "--venue", "deribit", str(path)], capfd)
    assert code == 1 and len(out.splitlines()) == 2
    assert err.splitlines()[-2:] == [
        "2 line(s) of channels the deribit decoder does not read (not decoded)",
        "2 line(s) could not be decoded",
    ]


def test_decode_help_says_its_exit_statuses_and_they_are_so(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """`decode --help` names its exit statuses (a newcomer found the 1 undocumented); each is
    what decode does."""
    code, out, _ = _run(["decode", "--help"], capfd)
    assert code == 0
    said = " ".join(out.split())
    assert (
        "exit status: 0 when every line was decoded, or skipped as a frame of a channel the decoder" in said
    )
    assert "1 when some line could not be decoded, the file could not be read, or decoding stopped" in said
    assert "2 for a usage error (an unknown venue); 130 when interrupted" in said
    unread = orjson.dumps(orjson.loads((FIXTURES / "ws_volatility_index.json").read_bytes()))
    cases = {b"": 0, unread + b"\n": 0, b"nope\n": 1}
    for i, (text, status) in enumerate(cases.items()):
        (tmp_path / f"{i}.jsonl").write_bytes(text)
        assert _run(["decode", "--venue", "deribit", str(tmp_path / f"{i}.jsonl")], capfd)[0] == status, text
    assert _run(["decode", "--venue", "deribit", str(tmp_path / "missing.jsonl")], capfd)[0] == 1
    assert _run(["decode", "--venue", "nope", str(tmp_path / "0.jsonl")], capfd)[0] == 2
    assert _run(["decode", str(tmp_path / "0.jsonl")], capfd)[0] == 2  # no --venue
