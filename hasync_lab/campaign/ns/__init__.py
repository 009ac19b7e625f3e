"""The fault campaign's ns tier: the real daemons on a live namespace lab (docs/campaign.md)."""
