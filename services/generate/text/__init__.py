"""Text generation: the instruction-tuned language model, lyrics, titles and descriptions."""
