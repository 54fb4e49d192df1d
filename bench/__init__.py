"""`make bench`: speed of our code against a named reference, side by side in one run."""
