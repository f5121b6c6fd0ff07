"""asyncio transports that carry SIP bytes to and from the sans-I/O core."""
