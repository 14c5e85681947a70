"""A minimal Django serving the unknown-caller flow: the stack's ceiling, measured beside the peer.

`bench/run.py --reference` runs it in the same run as our server and the peer, so the
table shows how far the bare stack (Django, PyJWT, psycopg, gunicorn) gets on this
machine today with one ORM statement per step: no middleware, no DRF, no rules, no
history. It is a yardstick for the benchmark, not part of the product.
"""
