"""One module per API resource. Resources build requests and structure answers; they never see aiohttp."""
