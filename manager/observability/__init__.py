"""What the manager tells about itself: Prometheus metrics (`metrics.py`, served on the
Docker API front as `GET /metrics`) and the request ID that follows each Docker API call
into the logs of the manager and the agents (`request_id.py`)."""

from flock.manager.observability.metrics import ManagerMetrics, metrics_middleware
from flock.manager.observability.request_id import echo_request_id, request_id_middleware

__all__ = ["ManagerMetrics", "echo_request_id", "metrics_middleware", "request_id_middleware"]
