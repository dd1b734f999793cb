"""Exchange offers: the sans-IO core (docs/OFFERS.md).

- ``book``: the order book of live offers, searched by pair and by asset.
- ``endorsements``: validator endorsements and the trust closure they build.
- ``items``: offers as gossip items (the signed offer and its validator's status).
- ``take``: the messages of the take protocol across validators.
- ``evidence``: proofs that a maker's validator accepted more than an offer held.
"""
