"""xds_server: an Envoy xDS control plane for blue-green, canary and mirrored releases.

The pipeline, each stage in its own package: ``api`` (operator gRPC API) →
``store`` (durable state) → ``model`` (intent and the blue-green rules, pure).
``cli`` is ``xdsctl``, a thin client of the operator API.
"""

__version__ = "0.1.0"
