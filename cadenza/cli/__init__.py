"""The `cadenza` command-line client, talking to the gateway."""
