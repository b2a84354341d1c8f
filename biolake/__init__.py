"""biolake: the command line and the jobs that join lake, ingest, queries and stats."""
