"""The cluster page: a small read-only web page the manager serves at `/ui`.

People look at it to see the cluster at a glance (nodes as boxes with their reserved CPU
and memory and their containers, so that spread vs binpack shows). The HTML, CSS and JS
live in `static/` and ship as package data; `routes.register` adds the page, its JSON
snapshot (`/ui/api/cluster`) and its server-sent-event stream (`/ui/api/stream`) to the
manager's aiohttp application, on the same listeners (and TLS) as the Docker API.
"""
