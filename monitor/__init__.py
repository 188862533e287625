"""alb-sg-monitor: keeps watch that every ALB of an EKS cluster can reach its targets."""

__version__ = "0.1.0"
