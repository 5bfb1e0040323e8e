"""The web dashboard: server-rendered pages (Jinja2) with a little JavaScript that talks to /api/v1.

No build step and no CDN: every file it needs is served from ``static/``, because sites run offline.
"""
