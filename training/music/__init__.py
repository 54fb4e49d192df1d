"""Training and export of the generate models (needs torch; serving never imports this)."""
