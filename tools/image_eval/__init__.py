"""Evals of the image side: the motif model (eval_image) and the cover composer (eval_covers)."""
