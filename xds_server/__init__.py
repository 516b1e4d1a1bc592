"""xds_server: an Envoy xDS control plane for blue-green, canary and mirrored releases.

The pipeline, each stage in its own package (docs/architecture.md): ``cli``
(``xdsctl``, a thin client of the operator API) → ``api`` (the operator gRPC
API: one commit path for every write) → ``store`` (SQLite, or PostgreSQL for
replicas; the committed world kept in memory) → ``model`` (intent and the
blue-green rules, pure) → ``translate`` (intent → Envoy resources, pure) →
``xds`` (the incremental snapshot builder, the cache, SotW and delta ADS, the
node registry, CSDS). ``replication`` publishes each committed world in order
and shares each replica's Envoys with the others; ``server`` wires it all.
"""

__version__ = "0.1.0"
