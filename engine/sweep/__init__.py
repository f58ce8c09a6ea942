"""Research at scale (issue 18): parameter sweeps and walk-forward tests over backtests.

A sweep is many trials; a trial is one deterministic backtest of a base config with some
strategy parameters changed and a market-time window (`model`). Trials run on an executor:
local processes by default, Ray tasks on a cluster (`local`, `ray`); a search proposes their
parameters (`space`, `search`), an objective ranks them (`objective`), a walk-forward plans
train/test windows and stitches the out-of-sample curve (`walkforward`); results are written as
a table, CSV/JSON and an HTML page (`results`, `html`). Turning a config into a kernel is the
command line's (`tradingd.cli.trial`): this room never imports the config or a connector.

Depends on: model, store, logs, backtest, reports."""
