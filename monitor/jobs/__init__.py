"""Work the worker does: polling, assessing, actions, delivery, checks."""
