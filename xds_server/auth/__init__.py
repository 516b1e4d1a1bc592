"""Who may call: API tokens and roles, TLS identities of operators and Envoy nodes,
and the limits on what one caller may open."""
