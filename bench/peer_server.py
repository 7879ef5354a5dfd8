"""scim2-server's own `scim2-server` command with a larger listen backlog (run by bench/run in the peer venv).

    <peer venv>/bin/python bench/peer_server.py --backlog 1024 -- \
        --hostname 127.0.0.1 --port P --bearer-token T

The command serves its WSGI app with wsgiref's threading server, whose `request_queue_size` (the listen
backlog) is socketserver's default of 5: at 32 concurrent clients, connections beyond the backlog are
refused or retried by the kernel after a SYN timeout. This sets the class attribute before the command
builds its server; everything else (storage, app, threads) is exactly the shipped command.
"""

from __future__ import annotations

import argparse
import sys

from scim2_server.testserver import cli

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backlog", type=int, default=1024)
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    cli.ThreadingWSGIServer.request_queue_size = args.backlog
    sys.argv = ["scim2-server", *[a for a in args.rest if a != "--"]]
    cli.main()
