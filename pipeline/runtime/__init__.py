"""How stages run: the poll/drain loop, the retry backoff, counters, health and Prometheus metrics, output folders."""
