"""Live traffic from Envoy's stats sink: decoded flushes, sliding windows, the gRPC sink."""
