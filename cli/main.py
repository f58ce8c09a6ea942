"""The `tradingd` command line (DESIGN.md, "command line"): the parser, and the dispatch to
the command chosen.

Each command is a module of this package whose docstring says what it does: `backtest`, `run`,
`record`, `simulate`, `decode`, `generate`, `check_config`, `report`, `data`, `catalog`, `logs`,
and `status` (`status` and `kill`). Only the chosen command's module is imported (`_dispatch`),
so `tradingd --help` and the light commands do not pay for the backtest kernel, the daemon and
the report. Every command turns bad input into one line on stderr and a non-zero exit
(`exits`); `--traceback` shows the Python traceback as well, for bug reports.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

import structlog

from tradingd.engine.logs.setup import uncaught_exceptions_routed
from tradingd.engine.logs.tail import LEVELS, parse_time
from tradingd.engine.model.errors import (
    ConfigError,
    CredentialsRefused,
    SecretUnavailable,
    StrategyError,
    TradingError,
)

from .exits import EXIT_CREDENTIALS, EXIT_FAILURE, EXIT_USAGE, UsageError

__all__ = ["EXIT_CREDENTIALS", "main"]


# --------------------------------------------------------------------------- the parser
# Each command's arguments; `handler` names the function that runs it ("module:function").
# First, what `tradingd logs` checks of its arguments as they are parsed.

_EXAMPLES = """examples:
  journalctl -o cat -f -u tradingd | tradingd logs --level warning
  tradingd logs /var/log/tradingd/tradingd.log -f --strategy gamma_btc --event 'order.*'
  tradingd logs tradingd.log --since 2h --venue deribit --json | jq .client_order_id
  tradingd logs tradingd.log.2.gz --since 2026-11-24T06:00Z --until 2026-11-24T07:00Z
"""


def _time(text: str) -> dt.datetime:
    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _level(text: str) -> int:
    rank = LEVELS.get(text.lower())
    if rank is None:
        raise argparse.ArgumentTypeError(
            f"expected a level (debug, info, warning, error, critical), got {text!r}"
        )
    return rank


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected a number of lines (0 or more), got {text!r}")
    return n


def _workers(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a number of worker processes (1 or more), got {text!r}")
    return n


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:  # else the server's task group dies with an OverflowError
        raise argparse.ArgumentTypeError(f"expected a port 0-65535 (0: any free port), got {text!r}")
    return port


def _where(text: str) -> tuple[str, str]:
    key, sep, pattern = text.partition("=")
    key = key.strip()
    if not key:
        raise argparse.ArgumentTypeError(f"expected KEY=GLOB or KEY, got {text!r}")
    return key, pattern if sep else "*"


def _add_backtest(sub: Any) -> None:
    b = sub.add_parser("backtest", help="replay the configured recordings through the strategies")
    b.add_argument("--config", required=True, help="the TOML config (mode and [backtest] data)")
    b.add_argument(
        "--report",
        metavar="PATH",
        help="write the report: a file ending in .json (its .html page and PNG charts beside it) or a"
        " run directory (report.json, report.html, ... in it); checked before the replay",
    )
    b.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    b.add_argument(
        "--no-cache",
        action="store_true",
        help="decode every frame, neither reading nor writing the decoded-event cache ($TRADINGD_CACHE_DIR,"
        " else $XDG_CACHE_HOME/tradingd/events, else ~/.cache/tradingd/events; delete it to clear it)",
    )
    b.add_argument(
        "--start",
        metavar="TIME",
        help="trade from this market time: ISO 8601, UTC if no zone (2026-11-24T00:30:00Z); the data"
        " before it only warms the books up (overrides [backtest] start)",
    )
    b.add_argument(
        "--end", metavar="TIME", help="stop the replay at this market time (overrides [backtest] end)"
    )
    b.set_defaults(handler="backtest:cmd_backtest")


def _add_sweep(sub: Any) -> None:
    s = sub.add_parser(
        "sweep", help="a parameter sweep or walk-forward test of a backtest config, in parallel"
    )
    s.add_argument("--config", required=True, help="the sweep file (SWEEP.toml: base config, params, search)")
    s.add_argument(
        "--workers",
        type=_workers,
        help="local worker processes (default: the file's, else this machine's CPUs)",
    )
    s.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="run the trials as Ray tasks on this cluster ('auto', 'host:6379', 'ray://host:10001',"
        " or 'local': a Ray instance of this machine's own); needs the cluster extra",
    )
    s.add_argument("--out", metavar="DIR", help="the results folder (default: the file's `out`)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    s.add_argument(
        "--no-cache",
        action="store_true",
        help="every trial decodes its frames (no decoded-event cache); finished trials are"
        " still kept in OUT/trials",
    )
    s.set_defaults(handler="sweep:cmd_sweep")


def _add_decode(sub: Any) -> None:
    d = sub.add_parser(
        "decode",
        help="decode raw frames (or recording lines) into normalized JSON events",
        description="Decode raw frames, or recording lines, into normalized events: one JSON object a"
        " line on stdout. A line that cannot be decoded is named on stderr (the first 20; then"
        " counted) and skipped.",
        epilog="exit status: 0 when every line was decoded, or skipped as a frame of a channel the"
        " decoder does not read; 1 when some line could not be decoded, the file could not be read,"
        " or decoding stopped early (the first 200 lines refused, nothing decoded: it says why); 2"
        " for a usage error (an unknown venue); 130 when interrupted",
    )
    d.add_argument("--venue", required=True, help="the venue whose frames these are (e.g. deribit)")
    d.add_argument("path", nargs="?", help="a file (.zst/.gz recognised) or - for stdin (the default)")
    d.set_defaults(handler="decode:cmd_decode")


def _add_check_config(sub: Any) -> None:
    c = sub.add_parser("check-config", help="validate a config file; exit 0 or name the bad key")
    c.add_argument("path", help="the TOML config to check (its strategies' modules are imported)")
    c.set_defaults(handler="check_config:cmd_check_config")


def _add_generate(sub: Any) -> None:
    g = sub.add_parser("generate", help="write a synthetic recording (deterministic, offline)")
    g.add_argument("--venue", required=True, help="the venue whose market to synthesize (e.g. deribit)")
    g.add_argument(
        "--out",
        required=True,
        help="the recording to write (.zst or .gz compress; checked before generating)",
    )
    g.add_argument(
        "--hours", type=float, help="how much market time (default 2, at most 72; about 9 s of work an hour)"
    )
    g.add_argument("--seed", type=int, help="the synthetic market's seed (default 7; same seed, same file)")
    g.add_argument("--start", help="ISO-8601 UTC start time, e.g. 2026-11-24T00:00:00Z")
    g.add_argument(
        "--strikes",
        type=int,
        help="deribit: strikes per expiry (default 4; 5-24 spread wide enough for a smile); "
        "polymarket with --crypto deribit: the deribit sample's, whose BTC path to follow",
    )
    g.add_argument(
        "--crypto",
        help='polymarket: "deribit" adds Bitcoin price markets priced from the deribit sample of '
        'the same --seed and --start (default "none")',
    )
    g.add_argument(
        "--mispriced",
        type=float,
        metavar="P",
        help="polymarket with --crypto deribit: the Bitcoin above-market nearest the money starts "
        "this far from the model's probability (-1 to 1, negative: YES cheap; default 0)",
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    g.set_defaults(handler="generate:cmd_generate")


def _add_run(sub: Any) -> None:
    r = sub.add_parser("run", help="the daemon: live or paper trading, as the config's mode says")
    r.add_argument("--config", required=True, help="the TOML config (mode = live or paper)")
    r.set_defaults(handler="run:cmd_run")


def _add_record(sub: Any) -> None:
    rc = sub.add_parser(
        "record",
        help="record the raw frames of the configured subscriptions (strategies run in paper mode)",
        description="Connect to the configured venues, run the configured strategies in paper mode "
        "(their subscriptions are what is recorded; no order reaches a venue), and write every raw "
        "frame into DIR as hourly .rec.zst files with a manifest.json. SIGINT/SIGTERM stop it.",
    )
    rc.add_argument("--config", required=True, help="a TOML config with [venues.*] and strategies")
    rc.add_argument("--out", required=True, metavar="DIR", help="the recording directory")
    rc.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this long")
    rc.set_defaults(handler="record:cmd_record")


def _add_simulate(sub: Any) -> None:
    m = sub.add_parser("simulate", help="run a local simulator of a venue on 127.0.0.1")
    m.add_argument("venue", help="the venue to simulate (e.g. deribit)")
    m.add_argument(
        "--port",
        type=_port,
        default=8765,
        help="the port to listen on: 0-65535 (0: any free one), default 8765",
    )
    m.add_argument("--host", default="127.0.0.1", help="the address to listen on (loopback by default)")
    m.add_argument("--seed", type=int, default=7, help="the synthetic market's seed")
    m.add_argument(
        "--strikes",
        type=int,
        metavar="N",
        help="deribit: strikes per expiry, 4-24 (default 4; 5+ for a volatility surface); "
        "polymarket with --crypto deribit: the deribit simulator's, whose BTC path to follow",
    )
    m.add_argument(
        "--crypto",
        metavar="SOURCE",
        help='polymarket: "deribit" adds Bitcoin price markets on the BTC path of a '
        "`tradingd simulate deribit` of the same --seed and --strikes (default none)",
    )
    m.add_argument(
        "--mispriced",
        type=float,
        metavar="P",
        help="polymarket with --crypto deribit: the Bitcoin above-market nearest the money starts "
        "this far from the model's probability, a gap to trade on at once (-1 to 1, negative: "
        "YES cheap; default 0)",
    )
    m.set_defaults(handler="simulate:cmd_simulate")


def _add_catalog(sub: Any) -> None:
    """Add `catalog` and its subcommands to the `tradingd` parser's subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--venue", metavar="NAME", help="whose catalog (default: the one catalog installed)")
    common.add_argument(
        "--cache", metavar="PATH", help="the cache file (default: from --config, else ~/.cache)"
    )
    common.add_argument("--config", metavar="PATH", help="a tradingd config whose [catalog] table to use")
    common.add_argument("--json", action="store_true", help="print JSON instead of a table")

    c = sub.add_parser(
        "catalog",
        help="a venue's market catalog: search, look up, refresh",
        description="Search and look up a venue's markets in the local catalog cache, or refresh it.",
    )
    cs = c.add_subparsers(dest="catalog_command", metavar="COMMAND", required=True)

    s = cs.add_parser(
        "search", parents=[common], help="weighted text search (slug 8x, question 4x, tags 2x, ...)"
    )
    s.add_argument("query", nargs="+", help="words to look for (all must match; else any)")
    s.add_argument("--limit", type=int, default=10, help="at most this many results (default 10)")
    s.set_defaults(handler="catalog:cmd_search")

    g = cs.add_parser("slug", parents=[common], help="the market with this exact slug")
    g.add_argument("slug", help="the market's slug, e.g. will-bitcoin-be-above-100000-on-december-31")
    g.set_defaults(handler="catalog:cmd_slug")

    r = cs.add_parser("regex", parents=[common], help="every market whose slug matches a regular expression")
    r.add_argument("pattern", help=r"a Python regular expression, e.g. '^will-bitcoin-be-above-\d+-on-'")
    r.add_argument("--open", action="store_true", help="only markets that can be traded now")
    r.set_defaults(handler="catalog:cmd_regex")

    t = cs.add_parser("token", parents=[common], help="the market an outcome token id belongs to")
    t.add_argument("token_id", help="an outcome token id (as `catalog search` shows it)")
    t.set_defaults(handler="catalog:cmd_token")

    k = cs.add_parser("get", parents=[common], help="the market with this condition id")
    k.add_argument("condition_id", help="the market's condition id (as `catalog search` shows it)")
    k.set_defaults(handler="catalog:cmd_get")

    f = cs.add_parser(
        "refresh", parents=[common], help="fetch every market from the Gamma API into the cache"
    )
    f.add_argument(
        "--gamma-url", metavar="URL", help="the catalog's API (default: from --config, else the venue's own)"
    )
    f.set_defaults(handler="catalog:cmd_refresh")

    pm = cs.add_parser(
        "price-markets",
        parents=[common],
        help="the crypto price markets read from the catalog, and the crypto-looking ones it could not read",
        description="Crypto price markets (above / below / between a strike at an instant) read from "
        "the catalog: underlying, strikes, when the settling price is taken and from where; then the "
        "markets that look like crypto price questions but could not be read, with the reason.",
    )
    pm.add_argument("--underlying", metavar="ASSET", help="only this asset's markets, e.g. BTC")
    pm.add_argument(
        "--recording",
        metavar="PATH",
        help="the markets a recording defines (a file or a `tradingd record` directory), not the cache's",
    )
    pm.set_defaults(handler="catalog:cmd_price_markets")


def _add_report(sub: Any) -> None:
    r = sub.add_parser(
        "report",
        help="draw a backtest's HTML and PNG report again from its JSON report",
        description="Reads RUN_DIR/report.json (or the JSON file named) and writes report.html "
        "(self-contained) and the PNG charts beside it.",
    )
    r.add_argument("run", metavar="RUN_DIR", help="a run directory holding report.json, or a JSON report")
    r.set_defaults(handler="report:cmd_report")


def _add_data(sub: Any) -> None:
    """Add `data` (and its subcommands) to the `tradingd` sub-command parser."""
    d = sub.add_parser("data", help="data files for backtests: what one holds")
    dsub = d.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    i = dsub.add_parser(
        "inspect",
        help="replay a data file through its venue's decoder and say what it holds",
        description="Recordings (a file, or a `tradingd record` directory) and the venue's other "
        "formats (Deribit: Tardis.dev CSV files, `--format tardis`).",
    )
    i.add_argument("path", help="a data file or directory")
    i.add_argument("--venue", required=True, help="the venue whose data it is (e.g. deribit)")
    i.add_argument("--format", default="recording", help="recording (default) or a venue format, e.g. tardis")
    i.add_argument("--json", action="store_true", help="print JSON")
    i.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    i.set_defaults(handler="data:cmd_data_inspect")


def _add_logs(sub: Any) -> None:
    """Add `logs` to the `tradingd` parser's subparsers."""
    p = sub.add_parser(
        "logs",
        help="tail structured logs (a file, or stdin): filter, pretty-print",
        description="Read tradingd's JSON log lines from a file or stdin, keep the ones the "
        "filters accept, and print them pretty (or, with --json, unchanged).",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "path",
        nargs="?",
        metavar="PATH",
        help="a log file (.gz/.zst too), or - for stdin (the default when stdin is not a terminal)",
    )
    p.add_argument(
        "-f",
        "--follow",
        action="store_true",
        help="keep printing lines as they are appended (follows logrotate, like tail -F)",
    )
    p.add_argument("-n", "--lines", type=_count, metavar="N", help="start N lines before the end of the file")
    p.add_argument(
        "--level", type=_level, metavar="L", help="this level and above: debug, info, warning, error"
    )
    for name, what in (
        ("venue", "venue"),
        ("strategy", "strategy"),
        ("event", "event name, e.g. order.fill or 'order.*'"),
        ("instrument", "instrument, e.g. BTC-PERPETUAL or 'BTC-*'"),
    ):
        p.add_argument(
            f"--{name}",
            action="append",
            metavar=name[0].upper(),
            help=f"only this {what} (exact or a glob; repeat for any of several)",
        )
    p.add_argument(
        "--where",
        action="append",
        type=_where,
        metavar="KEY=GLOB",
        help="only lines whose KEY matches (KEY alone: that has KEY); e.g. client_order_id=gamma_btc-7",
    )
    p.add_argument(
        "--grep",
        action="append",
        metavar="TEXT",
        help="only lines containing TEXT (in the raw line; repeat for any of several)",
    )
    p.add_argument(
        "--since",
        type=_time,
        metavar="T",
        help="from this time: ISO-8601 (UTC if no zone), or 10m, 2h, 1d ago",
    )
    p.add_argument("--until", type=_time, metavar="T", help="up to this time (same forms as --since)")
    p.add_argument(
        "--json", action="store_true", help="print the kept lines unchanged (JSON lines, for pipelines)"
    )
    p.add_argument("--no-color", action="store_true", help="no colours even on a terminal")
    p.add_argument(
        "--no-text",
        action="store_true",
        help="hide lines that are not JSON objects (by default shown as they are: they may be a crash)",
    )
    p.set_defaults(handler="logs:cmd_logs")


def _add_status(sub: Any) -> None:
    s = sub.add_parser(
        "status",
        help="what the running daemon is doing (venues, strategies, orders)",
        description="Read the status file the daemon (or `tradingd record`) rewrites every second.",
        epilog="exit status: 0 while it runs, 3 when it does not (stopped, dead, no status file), "
        "1 when the status file cannot be read",
    )
    s.add_argument("--config", help="the daemon's config (to find its status file)")
    s.add_argument(
        "--status-file", help="the status file itself, or a `tradingd record` --out directory holding it"
    )
    s.add_argument("--json", action="store_true", help="the raw status as JSON")
    s.set_defaults(handler="status:cmd_status")

    k = sub.add_parser("kill", help="the kill switch: cancel every order and refuse new ones until cleared")
    k.add_argument("--config", help="the daemon's config (to find its kill switch file)")
    k.add_argument("--file", help="the kill switch file itself")
    k.add_argument("--reason", help="why (shown in the log, the journal and `tradingd status`)")
    k.add_argument("--clear", action="store_true", help="release the kill switch")
    k.set_defaults(handler="status:cmd_kill")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tradingd",
        description="A trio trading daemon: many strategies, one WebSocket per venue, "
        "the same strategy code live and in backtests.",
    )
    p.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], help="override the config's level"
    )
    p.add_argument(
        "--log-format", choices=["auto", "json", "pretty"], help="override the config's log format"
    )
    p.add_argument(
        "--traceback", action="store_true", help="show Python tracebacks on errors (for bug reports)"
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    # In the order `tradingd --help` lists them.
    for add in (
        _add_backtest,
        _add_sweep,
        _add_decode,
        _add_check_config,
        _add_generate,
        _add_run,
        _add_record,
        _add_simulate,
        _add_catalog,
        _add_report,
        _add_data,
        _add_logs,
        _add_status,
    ):
        add(sub)
    return p


# --------------------------------------------------------------------------- the dispatch


def _dispatch(handler: str) -> Callable[[argparse.Namespace], int]:
    """The function a command runs: its module is imported only now (the chosen command's)."""
    module, _, name = handler.partition(":")
    run: Callable[[argparse.Namespace], int] = getattr(
        importlib.import_module(f"{__package__}.{module}"), name
    )
    return run


def _report(exc: BaseException | None, message: str) -> None:
    """One line for the user on stderr. Once the command's output is the structured log (the
    daemon), it is also a log line, with its traceback redacted like any other (never raw text),
    and the plain line goes to the real stderr (`sys.stderr` then turns text into log lines):
    the line a person reads in `systemctl status` or a terminal."""
    if uncaught_exceptions_routed():
        fields: dict[str, Any] = {"message": message}
        if exc is not None:
            fields["error"] = type(exc).__name__
            fields["exc_info"] = exc
        structlog.get_logger("tradingd").critical("tradingd.exit_on_error", **fields)
        print(f"tradingd: {message}", file=sys.__stderr__ or sys.stderr, flush=True)
        return
    print(f"tradingd: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    # The process's own command line (the console script, `python -m`), not a call from a test
    # or a program: a command may then replace the process (`backtest --report`'s charts).
    args.own_process = argv is None
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        code = _dispatch(args.handler)(args)
        return code
    except KeyboardInterrupt:
        _report(None, "interrupted")
        return 130
    except (CredentialsRefused, SecretUnavailable) as exc:
        if args.traceback:
            raise
        _report(None, f"error: {exc}")  # names what to check, never a value
        return EXIT_CREDENTIALS
    except (ConfigError, UsageError, StrategyError) as exc:
        if args.traceback:
            raise
        _report(None, f"error: {exc}")
        return EXIT_USAGE
    except TradingError as exc:
        if args.traceback:
            raise
        _report(None, f"error: {exc}")
        return EXIT_FAILURE
    except Exception as exc:  # never a raw traceback for the user; --traceback for the detail
        if args.traceback:
            raise
        if uncaught_exceptions_routed():  # the daemon: the traceback goes to the log, redacted
            _report(exc, f"internal error: {type(exc).__name__}")
        else:
            _report(None, f"internal error: {exc!r} (run with --traceback for details)")
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
