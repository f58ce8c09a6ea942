"""How a command ends (DESIGN.md, "command line"): bad input is one line on stderr and a non-zero
exit: 2 for a usage or config error, 1 for a failure while running (a data file, a venue), 78
(`EX_CONFIG`) when a venue refused the credentials at start, or a secret the config names (venue
credentials, an alert webhook URL's variable or file) is missing or unusable (`tradingd run`: a
wrong secret is not fixed by restarting, so the systemd unit says `RestartPreventExitStatus=78`)."""

from __future__ import annotations

__all__ = ["EXIT_CREDENTIALS", "EXIT_FAILURE", "EXIT_USAGE", "UsageError"]

EXIT_USAGE = 2
EXIT_FAILURE = 1
EXIT_CREDENTIALS = 78  # sysexits.h EX_CONFIG; deploy/tradingd.service: RestartPreventExitStatus=78


class UsageError(Exception):
    """A command's arguments do not make sense (exit 2, one line)."""
