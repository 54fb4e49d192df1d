"""An address no test server can ever take, for backends a test leaves unreachable."""

# Not a free port picked at random: gRPC shares subchannels process-wide, so a port
# that one test dialled and found closed stays in connection backoff for every later
# channel to it, and a later in-process server that the kernel gives the same port
# looks refused (a CI flake: the generate backend reported 'Connection refused').
# Port 1 is privileged, so no test server binds it.
NOWHERE = "127.0.0.1:1"
