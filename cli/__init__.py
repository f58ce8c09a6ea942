"""The `tradingd` command line: the one part of tradingd that reads `config/`.

`main` builds the parser and runs the chosen command's module, one module per command:
`backtest`, `run` (the daemon), `record`, `simulate`, `decode`, `generate`, `check_config`,
`report`, `data` (`data inspect`), `catalog`, `logs`, `status` (`status` and `kill`). `settings`
turns a loaded config into the engine's typed settings; `exits` holds the exit statuses.
"""
