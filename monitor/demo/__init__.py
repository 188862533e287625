"""The demo world: a simulated AWS account (moto over HTTP) in the middle of a v1 -> v2 migration."""
