"""The commands that run here rather than call a server: ``serve``, ``demo`` and
``bootstrap``. Each sets ``local`` to a function of the parsed flags that returns
the exit code; the server itself (its gRPC services, the store) is imported only
when ``serve`` or ``demo`` runs.
"""
