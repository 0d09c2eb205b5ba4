"""How stages run: the poll/drain loop, counters, health and Prometheus metrics, output folders."""
