"""`nnctl serve`: one trained run behind HTTP (extra `serve`: FastAPI + uvicorn). See nnctl/serve/app.py."""
