"""The edge: Envoy as the data plane, configured and supervised from the gateway's side."""
