"""The hot lane: the Docker API's busiest routes answered without aiohttp's per-request
layers (connection.py says how and why)."""
