"""The storefront API: the live release artifact served over HTTP without the dashboard's database.

context (artifact → ranking snapshot), live (the served release and its switch), visit (this visit's
events and device), storefront (the answers), schemas + api (FastAPI), metrics (Prometheus), cli (serve).
"""
