"""A small asyncio SCPI line server that simulated instruments build on."""
