"""Lets `python -m monitor` behave exactly like the `alb-sg-monitor` console script."""

from monitor.cli import main

raise SystemExit(main())
