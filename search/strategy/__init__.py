"""The search strategy: which ticket to try next (searcher, verdict policy) and seed racing."""
