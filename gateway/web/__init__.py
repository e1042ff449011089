"""The local status page for installers (`gateway.web:`, docs/operations.md, "The status page").

`view`, `auth` and `strings` are plain Python (what the page shows, who may see it, in which
words); `server` serves them with aiohttp and is imported only when `gateway.web` is set, so a
gateway without the page never loads the web library.
"""
