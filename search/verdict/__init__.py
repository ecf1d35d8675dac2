"""The verdict: paired statistics, which tickets are super or winning, and its table and plots."""
