"""Long-running operations: calls of public methods the gateway makes on a tenant's
behalf, kept in its store so they outlive a restart (google.longrunning.Operations)."""
