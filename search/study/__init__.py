"""One study run: Ray Tune, the trials, the study's state, kept weights and the terminal display."""
