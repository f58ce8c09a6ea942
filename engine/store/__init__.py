"""Persistence: the order journal (SQLite: orders, fills, the ledger's entries, restored after a
restart), the recording format (one line a received frame; plain, .zst or .gz) and the
session recorder that writes them live.

Depends on: model."""

from .journal import JournalError, JournalStats, JournalWriteError, LedgerEntry, OrderJournal
from .recorder import MANIFEST_NAME, RecordingSet, SessionRecorder, read_manifest, recording_files
from .recording import (
    RecordingReader,
    RecordingWriter,
    format_ts,
    merge_recordings,
    open_binary,
    parse_ts,
    unfinished,
)

__all__ = [
    "MANIFEST_NAME",
    "JournalError",
    "JournalStats",
    "JournalWriteError",
    "LedgerEntry",
    "OrderJournal",
    "RecordingReader",
    "RecordingSet",
    "RecordingWriter",
    "SessionRecorder",
    "format_ts",
    "merge_recordings",
    "open_binary",
    "parse_ts",
    "read_manifest",
    "recording_files",
    "unfinished",
]
