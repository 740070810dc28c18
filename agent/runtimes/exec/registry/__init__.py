"""Registry pulls and pushes for the exec runtime (Docker Registry HTTP API v2 / OCI
distribution), over aiohttp, with a content-addressed layer store."""
