"""Reports: a backtest run as HTML with PNG charts (matplotlib: the `report` extra, imported only
when a chart is drawn).

Depends on: model, backtest."""

from .html import render_html, render_run, write_run_reports

__all__ = ["render_html", "render_run", "write_run_reports"]
