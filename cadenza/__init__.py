"""Cadenza: generated v1 API packages, the shared server kit and the command-line client."""
