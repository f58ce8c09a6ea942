"""venue"""

# -- the JSON-RPC mechanism Deribit and Derive share, and the helpers every connector uses
# (helper "jsonrpc", issue 14) --
from .jsonrpc import Envelope, Handler, JsonRpcDecoder, JsonRpcSession, NotificationParams, RpcError, batches
from .plugins import invalid_frame, malformed_frame
from .settings import at_least, known_overrides

__all__ = [
    "Envelope",
    "Handler",
    "JsonRpcDecoder",
    "JsonRpcSession",
    "NotificationParams",
    "RpcError",
    "at_least",
    "batches",
    "invalid_frame",
    "known_overrides",
    "malformed_frame",
]
