"""Seeded wire-level fuzzing of every public gRPC method, found by server reflection.

`python -m tools.fuzz --target HOST:PORT --seed S --calls-per-method N` sends random,
descriptor-built and mutated protobuf bodies to each method with its own call shape and
prints the status codes per method. tests/fuzz runs it against the test mesh. Production
code never imports this package.
"""
