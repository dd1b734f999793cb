"""Multi-hop conditional payments: announcements, routing, the payment core (pure).

``messages`` holds the signed route announcements, the route of a conditional
PROPOSE and the invoice messages; ``routing`` the graph and path finding;
``core`` the state machine that plays payer, forwarder and payee over SNAP
(``events``: its inputs, effects and records; ``state``: what records build;
``checks``: what it refuses).
See docs/PAYMENTS.md.
"""
