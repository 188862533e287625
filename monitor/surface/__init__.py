"""The surface: the composition root that wires everything (main), the HTTP server, the Prometheus
metrics, the text and JSON rendering, and the log setup."""
