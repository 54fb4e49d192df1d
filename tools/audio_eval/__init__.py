"""Eval of the neural synthesiser cadenza-ddsp (`python -m tools.audio_eval.eval_audio`)."""
