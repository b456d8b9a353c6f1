"""The web console at ``/console/``: server-rendered pages that their page's bundle enhances."""
