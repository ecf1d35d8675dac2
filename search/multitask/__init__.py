"""Tickets-Share: multi-task fine-tuning through each task's super ticket."""
