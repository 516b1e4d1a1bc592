"""gRPC metadata keys shared by the operator API and its clients."""

import re
from typing import TypeGuard

# The caller's identity (user@host) as the audit log records it.
ACTOR_METADATA_KEY = "x-xdsctl-actor"

# A write's id for safe retries (the common HTTP header's name): a write repeated
# with the same id is answered with its first reply and applied once.
REQUEST_ID_METADATA_KEY = "x-request-id"
# Trailing metadata of a write answered from memory: its request id was applied before.
REPLAYED_METADATA_KEY = "x-xds-replayed"
# A write sent with this (any value) is checked and answered, never stored or pushed;
# the answer carries it back in its trailing metadata.
DRY_RUN_METADATA_KEY = "x-xds-dry-run"
MAX_REQUEST_ID = 128
# The longest `--wait --timeout` (client) and WaitForSync timeout (server): a --wait
# of a huge fleet through a slow rollout takes hours, not days.
MAX_WAIT_SECONDS = 6 * 3600.0
REQUEST_ID_CHARACTERS = "A-Za-z0-9._:-"


def is_request_id(value: object, longest: int = MAX_REQUEST_ID) -> TypeGuard[str]:
    """Whether ``value`` may be a request id (printable, no spaces, bounded)."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= longest
        and re.fullmatch(f"[{REQUEST_ID_CHARACTERS}]+", value) is not None
    )
