"""The ``ztos`` command: a thin client of the API plus local agent and lab verbs."""
