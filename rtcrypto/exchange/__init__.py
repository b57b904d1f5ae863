"""Exchange adapters behind one interface (``base.ExchangeAdapter``): ``paper`` and ``gemini``."""
