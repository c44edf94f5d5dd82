"""A bare FastAPI endpoint: the yardstick for `make bench-api`."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/bare")
async def bare() -> dict[str, str]:
    return {"status": "ok"}
