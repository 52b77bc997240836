"""The demo scenario: an embedded SQLite warehouse and a script that runs the example DAG on it."""
