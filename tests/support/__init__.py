"""What several test modules share: processes, a real Envoy stack, PostgreSQL, certificates,
worlds and clients. Test modules import from here (or use conftest fixtures), never
from each other."""
