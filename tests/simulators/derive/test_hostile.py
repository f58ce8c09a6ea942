"""The simulated Derive never dies on what a client sends: every method, given any params a JSON
object can hold, answers or refuses with a JSON-RPC error (VENUES.md §3.1, §3.7)."""

from __future__ import annotations

import math
from typing import Any

import orjson
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.examples import examples
from tests.support.sim_clock import fixed_clock
from tradingd.simulators.derive.simulator import _METHODS, DEMO_WALLET, DeriveSimulator, RpcError, _Peer

SIM = DeriveSimulator(seed=2, matching_tps=1e9, non_matching_tps=1e9, clock=fixed_clock())
KEYS = [
    "subaccount_id", "instrument_name", "direction", "amount", "limit_price", "max_fee", "nonce",
    "signature_expiry_sec", "signer", "signature", "order_type", "time_in_force", "label", "order_id",
    "page", "page_size", "channels", "currency", "instrument_type", "expired", "wallet", "timestamp",
    "from_timestamp", "to_timestamp", "start_timestamp", "end_timestamp", "status",
]  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        ["ETH-PERP", "buy", "1e999999", "NaN", "-1", "0.1", "30769", "", "gtc", "0x" + "ab" * 65]
    ),
    st.text(max_size=20),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
params = st.dictionaries(st.sampled_from(KEYS), values, max_size=8)
_SEND, _RECEIVE = trio.open_memory_channel[bytes](math.inf)
PEER = _Peer(99, _SEND, "/ws")  # a WebSocket peer, so that subscribe and login get that far


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(method=st.sampled_from(sorted(_METHODS)), p=params)
def test_any_params_to_any_method_answer_or_refuse(method: str, p: dict[str, Any]) -> None:
    account = SIM.accounts[DEMO_WALLET.lower()]
    refusal: RpcError | None = None
    try:
        SIM.call(method, p, peer=PEER, account=account, after=[])
    except RpcError as exc:  # the venue's refusal; anything else fails the test
        refusal = exc
    assert refusal is None or (isinstance(refusal.code, int) and refusal.message)


async def test_hostile_frames_over_the_socket_are_answered() -> None:
    send, receive = trio.open_memory_channel[bytes](1000)
    peer = _Peer(1, send, "/ws")
    for text in ["", "[]", "null", "{", '{"method": 5}', '{"id": 1, "method": "subscribe", "params": []}',
                 '{"id": 2, "method": "subscribe", "params": {"channels": [1, 2]}}',
                 '{"id": 3, "method": "private/order", "params": {}}', '"\\u0000"']:  # fmt: skip
        await SIM.on_text(peer, text)
    answers = []
    while True:
        try:
            answers.append(orjson.loads(receive.receive_nowait()))
        except trio.WouldBlock:
            break
    assert len(answers) == 9 and all("error" in a for a in answers)
