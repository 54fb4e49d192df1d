"""The gateway: Cadenza's one public endpoint, forwarding calls to the backends."""
