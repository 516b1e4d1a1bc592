"""gRPC metadata keys shared by the operator API and its clients."""

# The caller's identity (user@host) as the audit log records it.
ACTOR_METADATA_KEY = "x-xdsctl-actor"

# A write's id for safe retries (the common HTTP header's name): a write repeated
# with the same id is answered with its first reply and applied once.
REQUEST_ID_METADATA_KEY = "x-request-id"
