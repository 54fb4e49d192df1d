"""Lyrics that fit a melody: phrases, prosody, constrained decoding, karaoke MIDI."""
