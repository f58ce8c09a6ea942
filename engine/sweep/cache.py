"""The trial cache: every finished trial of a sweep, kept as `OUT/trials/<key>.json` (the
JSON of `model.result_to_dict`) the moment it finishes, so that a sweep stopped anywhere (Ctrl-C,
a machine lost) keeps its work and a rerun of the same sweep runs only what is missing.

A trial's key (`tradingd.cli.trial.key_of`) names everything its result depends on, so a kept
result is reused as it is. What is kept: trials that ran ("ok") and trials whose failure is
deterministic by nature, raised by the trial's own code (a strategy's `ValueError`, a
`ConfigError` of its params: the same trial raises again). Not kept (`keeps`), because they are
the place's, not the trial's, and a rerun may not meet them: a worker lost beyond its attempts
("worker lost ..."); an `OSError` of any kind (a full disk, a connection reset, a timeout, a
permission) and `MemoryError`; the event cache's `CacheDamaged` and `DecoderChanged`; data a
worker could not read (`DataUnreadable`, fixed by mounting the data); a module a worker could not
import (`ImportError`: a node without the user's code); and every error of Ray's own
(`ActorDiedError`, `RaySystemError`, `TaskCancelledError`, ...: `RAY_ERRORS`). An error is told by
its type's name, the start of the result's `error` ("Type: message", `local.one_line`).

A kept trial holds no `objective` or `feasible` (`UNKEPT`): the key does not name the sweep's
objective, so a kept score could be stale; each sweep scores what it reads (`results.json` has
the scores).

`put` failing (the results folder full or gone) is `TrialStoreError`, naming the folder: the
sweep stops there (the trials cannot be kept), as it would on Ctrl-C."""

from __future__ import annotations

import builtins
import contextlib
import os
import tempfile
from pathlib import Path

import orjson
import structlog

from ..model.errors import DataError
from .model import TrialResult, result_from_dict, result_to_dict

__all__ = ["NOT_KEPT", "RAY_ERRORS", "UNKEPT", "TrialStore", "TrialStoreError"]

# Ray's exceptions (`ray.exceptions`, Ray 2.x), by name: Ray is not imported here (an extra);
# tests/sweep/test_cache.py checks the list against the installed Ray.
RAY_ERRORS = frozenset(
    {
        "ActorAlreadyExistsError", "ActorDiedError", "ActorHandleNotFoundError",
        "ActorPlacementGroupRemoved", "ActorUnavailableError", "ActorUnschedulableError",
        "AsyncioActorExit", "AuthenticationError", "CrossLanguageError", "GetTimeoutError",
        "LocalRayletDiedError", "NodeDiedError", "ObjectFetchTimedOutError", "ObjectFreedError",
        "ObjectLostError", "ObjectReconstructionFailedError", "ObjectRefStreamEndOfStreamError",
        "ObjectStoreFullError", "OufOfBandObjectRefSerializationException", "OutOfDiskError",
        "OutOfMemoryError", "OwnerDiedError", "PendingCallsLimitExceeded", "PlasmaObjectNotAvailable",
        "RayActorError", "RayCgraphCapacityExceeded", "RayChannelError", "RayChannelTimeoutError",
        "RayDirectTransportError", "RayError", "RaySystemError", "RayTaskError",
        "ReferenceCountingAssertionError", "RpcError", "RuntimeEnvSetupError",
        "StreamingGeneratorReplayInconsistentError", "TaskCancelledError", "TaskPlacementGroupRemoved",
        "TaskUnschedulableError", "UnserializableException", "UserCodeException", "WorkerCrashedError",
    }
)  # fmt: skip

# The failures of the place a trial ran, by their type's name (module docstring): never kept.
NOT_KEPT = frozenset(
    {n for n, c in vars(builtins).items() if isinstance(c, type) and issubclass(c, OSError | MemoryError)}
    | {"CacheDamaged", "DecoderChanged", "DataUnreadable", "ImportError", "ModuleNotFoundError"}
    | RAY_ERRORS
)
# A result's fields the trial file leaves out: its score, this sweep's objective's (module docstring).
UNKEPT = ("objective", "feasible")
_WORKER_LOST = "worker lost"  # `local.WORKER_LOST` (not imported: the cache needs no executor)


class TrialStoreError(DataError):
    """A result could not be kept (`put`): the folder, and why."""


def error_type(error: str) -> str:
    """The type's name an error line starts with ("Type: message"; Ray's "RayTaskError(X)")."""
    return error.partition(":")[0].partition("(")[0].strip()


_log = structlog.get_logger("tradingd.sweep")


class TrialStore:
    """`OUT/trials/<key>.json`, one file per trial, each written whole or not at all (a
    temporary file in the same folder, then `os.replace`): a reader never sees half a file,
    and two workers finishing the same key leave one of two equal files."""

    def __init__(self, out: Path) -> None:
        self.directory = Path(out) / "trials"

    def path_of(self, key: str) -> Path:
        if not key or not key.isalnum():  # a key is a hex digest: never a path of its own
            raise ValueError(f"not a trial key: {key!r}")
        return self.directory / f"{key}.json"

    def get(self, key: str) -> TrialResult | None:
        """The kept result of `key`, or None: not there, or damaged (cut short, not JSON, not a
        result, another key's): logged and ignored, so the trial runs again and replaces it."""
        path = self.path_of(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            _log.warning("sweep.trial_cache_unreadable", path=str(path), error=exc.strerror or str(exc))
            return None
        try:
            result = result_from_dict(orjson.loads(data))
        except (orjson.JSONDecodeError, ValueError, TypeError) as exc:
            _log.warning("sweep.trial_cache_damaged", path=str(path), error=str(exc).splitlines()[0])
            return None
        if result.key != key:
            _log.warning("sweep.trial_cache_damaged", path=str(path), error=f"holds trial {result.key}")
            return None
        return result

    def keeps(self, result: TrialResult) -> bool:
        """Whether `put` keeps `result`: "ok", or a failure of the trial's own (module docstring)."""
        if result.status == "ok":
            return True
        error = result.error or ""
        return not error.startswith(_WORKER_LOST) and error_type(error) not in NOT_KEPT

    def put(self, result: TrialResult) -> None:
        """Keep `result` under its key (atomically), unless it is a worker's failure."""
        if not self.keeps(result):
            return
        path = self.path_of(result.key)
        # Its number, role and fold are this sweep's; a rerun that finds it sets its own.
        # Not its score: the key does not name the objective, which a rerun may change (another
        # statistic, constraints): a kept score could be stale. Every sweep scores it afresh.
        entry = result_to_dict(result)
        for unkept in UNKEPT:
            entry.pop(unkept, None)
        data = orjson.dumps(entry, option=orjson.OPT_SORT_KEYS)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{result.key}.", suffix=".tmp", dir=self.directory)
        except OSError as exc:
            why = exc.strerror or exc
            raise TrialStoreError(f"cannot keep the trials in {self.directory}: {why}") from None
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(exc, OSError):
                raise TrialStoreError(
                    f"cannot keep the trials in {self.directory}: {exc.strerror or exc}"
                ) from None
            raise

    def __len__(self) -> int:
        return sum(1 for _ in self.directory.glob("*.json")) if self.directory.is_dir() else 0
