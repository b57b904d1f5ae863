"""The trader: liquidity records + the current forecast -> strategy -> risk gate -> exchange."""
