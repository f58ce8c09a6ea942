"""Alerts that reach a person: the watcher that turns the daemon's status, once a second, into
alerts on transitions (the kill switch, a venue down, a strategy failed, a risk refusal burst,
a daily loss, reconciliation surprises, journal and disk errors), and the notifier that posts
them to Slack, Discord, Telegram or JSON webhooks, deduplicated and rate-limited, from tasks of
its own so that nothing here ever holds up trading. `[alerts]` in the config, checked there and
given as `AlertOptions`; the webhooks' URLs come from the environment or a file, never the
config.

Depends on: model, logs."""

from .alert import KINDS, Alert, AlertKind, Severity
from .notifier import SUPPRESS_REASONS, AlertNotifier, webhook_body
from .options import FORMATS, AlertOptions, WebhookFormat, WebhookOptions
from .watcher import AlertWatcher

__all__ = [
    "FORMATS",
    "KINDS",
    "SUPPRESS_REASONS",
    "Alert",
    "AlertKind",
    "AlertNotifier",
    "AlertOptions",
    "AlertWatcher",
    "Severity",
    "WebhookFormat",
    "WebhookOptions",
    "webhook_body",
]
