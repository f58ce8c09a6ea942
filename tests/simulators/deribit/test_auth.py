"""The simulator's HMAC rules against VENUES.md §1.3's test vector, and the checks they make of
a client's `public/auth` (WebSocket) and `deri-hmac-sha256` header (HTTP)."""

from __future__ import annotations

import hashlib
import hmac
import time

import pytest

from tradingd.simulators.deribit import auth
from tradingd.simulators.deribit.simulator import DeribitSimulator, RpcError

# VENUES.md §1.3: the docs' vector, reproduced there with Python's hmac.
VECTOR: dict[str, str] = {
    "secret": "AMANDASECRECT",
    "timestamp": "1576074319000",
    "nonce": "1iqt2wls",
    "data": "",
    "signature": "56590594f97921b09b18f166befe0d1319b198bbcdad7ca73382de2f88fe9aa1",
}


def test_the_client_signature_of_the_docs_vector() -> None:
    v = VECTOR
    sig = auth.client_signature(str(v["secret"]), int(v["timestamp"]), str(v["nonce"]), str(v["data"]))
    assert sig == v["signature"]
    assert auth.signature_matches(sig, v["signature"])
    assert not auth.signature_matches(sig, v["signature"].upper())  # lowercase hex only
    assert not auth.signature_matches(sig, None)


def test_the_http_signature_signs_method_uri_and_body_each_on_its_line() -> None:
    sig = auth.http_signature(
        "s3cret", 1576074319000, "n0nce", "get", "/api/v2/private/get_positions?currency=BTC", ""
    )
    message = b"1576074319000\nn0nce\nGET\n/api/v2/private/get_positions?currency=BTC\n\n"
    assert sig == hmac.new(b"s3cret", message, hashlib.sha256).hexdigest()
    assert auth.parse_hmac_header(f"id=abc,ts=1,nonce=n, sig={sig}") == {
        "id": "abc",
        "ts": "1",
        "nonce": "n",
        "sig": sig,
    }


def test_the_simulator_takes_the_docs_request_at_its_time_and_refuses_it_after() -> None:
    v = VECTOR
    ts = int(v["timestamp"])
    clock_ns = ts * 1_000_000 + 30_000_000_000  # 30 s after the signature: within 60 s
    sim = DeribitSimulator(seed=1, accounts={"AMANDA": str(v["secret"])}, clock=lambda: clock_ns)
    params = {
        "grant_type": "client_signature",
        "client_id": "AMANDA",
        "timestamp": ts,
        "nonce": v["nonce"],
        "data": v["data"],
        "signature": v["signature"],
    }
    assert sim.call("public/auth", params)["token_type"] == "bearer"
    with pytest.raises(RpcError) as bad:
        sim.call("public/auth", {**params, "signature": "0" * 64})
    assert (bad.value.code, bad.value.data) == (13004, {"reason": "bad signature"})
    late = DeribitSimulator(
        seed=1, accounts={"AMANDA": str(v["secret"])}, clock=lambda: clock_ns + 31_000_000_000
    )
    with pytest.raises(RpcError) as stale:
        late.call("public/auth", params)
    assert stale.value.data == {"reason": "timestamp out of range"}


def test_the_http_header_is_checked() -> None:
    sim = DeribitSimulator(seed=1)
    client_id, secret = "tradingd-sim", "sim-secret-0123456789"
    ts = str(time.time_ns() // 1_000_000)
    uri = "/api/v2/private/get_positions?currency=BTC"
    sig = hmac.new(secret.encode(), f"{ts}\nabc\nGET\n{uri}\n\n".encode(), hashlib.sha256).hexdigest()
    header = f"id={client_id},ts={ts},nonce=abc,sig={sig}"
    assert sim._http_account(f"deri-hmac-sha256 {header}", "GET", uri, "") is sim.accounts[client_id]
    with pytest.raises(RpcError, match="invalid_credentials"):
        sim._http_account(f"deri-hmac-sha256 {header}", "POST", uri, "")  # signed as a GET
