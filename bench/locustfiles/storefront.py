"""Locust shoppers for ``bench/serve.py`` (run by it: ``locust -f bench/locustfiles/storefront.py``).

Each shopper is on a page for 0.5–1.5 s between requests and mixes: GET homepage (4), POST homepage with
up to 20 events of this visit (2), a product page's similar items (3), a search (1). A response counts as
failed unless it is a 200 whose body and ``X-Release-Id`` header name the same release; the release ids
seen are written to ``HS_BENCH_SEEN`` (JSON) when the run stops. ``HS_BENCH_IDS``: a JSON file with
``users``, ``items`` and ``words`` to draw requests from (written by ``bench/serve.py``).
"""

from __future__ import annotations

import json
import os
import random
import re
from collections import Counter

from locust import FastHttpUser, between, events, task

IDS = json.loads(open(os.environ["HS_BENCH_IDS"]).read())  # noqa: SIM115 (read once at import)
SEEN: Counter = Counter()
RELEASE_ID = re.compile(r'\{"release_id":(\d+),')


@events.quitting.add_listener
def write_seen(**_):
    with open(os.environ["HS_BENCH_SEEN"], "w") as f:
        json.dump({str(k): v for k, v in SEEN.items()}, f)


class Shopper(FastHttpUser):
    wait_time = between(0.5, 1.5)

    def on_start(self):
        self.user = random.choice(IDS["users"])

    def _check(self, response) -> None:
        if response.status_code != 200:
            response.failure(f"status {response.status_code}: {response.text[:200]}")
            return
        # every answer's JSON starts with its release id: read that, not the whole body (the load generator
        # shares the machine with the API, so its own work is kept small)
        match = RELEASE_ID.match(response.text[:40])
        body_id, header_id = match and match.group(1), response.headers.get("x-release-id")
        if body_id != header_id:
            response.failure(f"release id {body_id} in the body, {header_id} in the header")
            return
        SEEN[body_id] += 1
        response.success()

    @task(4)
    def homepage(self):
        with self.client.get(f"/v1/homepage/{self.user}", name="GET /v1/homepage", catch_response=True) as r:
            self._check(r)

    @task(2)
    def homepage_with_visit(self):
        visit = [{"item_id": random.choice(IDS["items"]), "event_type": random.choice(["view", "click"])}
                 for _ in range(random.randint(1, 20))]  # fmt: skip
        with self.client.post(f"/v1/homepage/{self.user}", json={"events": visit},
                              name="POST /v1/homepage", catch_response=True) as r:  # fmt: skip
            self._check(r)

    @task(3)
    def similar(self):
        item = random.choice(IDS["items"])
        with self.client.get(f"/v1/similar/{item}?user_id={self.user}", name="GET /v1/similar",
                             catch_response=True) as r:  # fmt: skip
            self._check(r)

    @task(1)
    def search(self):
        q = random.choice(IDS["words"])
        with self.client.get(f"/v1/search?q={q}&user_id={self.user}", name="GET /v1/search",
                             catch_response=True) as r:  # fmt: skip
            self._check(r)
