"""The scaled mode: the leader enqueues work on a message broker, any number of workers do it."""
