"""gRPC metadata keys shared by the operator API and its clients."""

# The caller's identity (user@host) as the audit log records it.
ACTOR_METADATA_KEY = "x-xdsctl-actor"
