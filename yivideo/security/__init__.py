"""Request and input hardening: credentials, rate limits, input paths, URLs, webhooks, media.

Each module is small and imports no web framework; the HTTP ingress and the engine call
them at their boundaries:

    auth        API keys (stored as SHA-256 hashes) and HS256 JWT bearer tokens
    ratelimit   per-principal moving-window limits (``limits``)
    paths       confine a requested input path to configured input roots
    urls        refuse URLs that resolve to non-public addresses; bounded downloads
    webhooks    Standard-Webhooks signing and verification
    media_guard ffprobe restricted to local files and plain media containers
"""
