"""Pruning methods: each module turns scores of a fine-tuned (or pre-trained) model into a ticket mask."""
