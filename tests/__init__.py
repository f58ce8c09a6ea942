"""tradingd's tests. A regular package, first on sys.path (pytest `pythonpath`): a dependency
(py_order_utils) installs a stray top-level `tests` package that must not shadow this one."""
