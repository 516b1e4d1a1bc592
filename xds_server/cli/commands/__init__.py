"""The client commands, one module per group: each calls the operator API and
registers its own subcommands with ``register(commands)``.

They import no part of the server (its gRPC services, the store, xDS): a
client command starts with the API client and its messages only.
"""
