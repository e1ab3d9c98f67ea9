"""cachewhy: why was this Docker build slow?

Data flows one way: run (buildx.py) -> events (events.py) -> graph (graph.py)
-> compare -> explain -> report (report/).
"""

__version__ = "0.1.0"
