"""The credentials of the Derive simulator's demo account."""

from __future__ import annotations

from tradingd.simulators.derive.simulator import DEMO_SESSION_KEY, DEMO_SUBACCOUNT, DEMO_WALLET

CREDS = {
    "DERIVE_WALLET": DEMO_WALLET,
    "DERIVE_SESSION_KEY": DEMO_SESSION_KEY,
    "DERIVE_SUBACCOUNT_ID": str(DEMO_SUBACCOUNT),
}
