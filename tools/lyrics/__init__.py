"""Eval of the lyrics writer (`python -m tools.lyrics.eval_lyrics`)."""
