"""Page every Dog of one owner back with its edges through pymemri 0.0.38 (2022), as its users page; print items per second.

Run by `bench_pod.py` (unless `--old-client off`) with the Python of a virtual environment that holds
pymemri==0.0.38 (its dependencies clash with today's pymemri, so it cannot share an environment with it):

    old-venv/bin/python tools/old_client_paging.py URL OWNER KEY PAGE

It pages with `PodClient.search_paginate({"type": "Dog"}, limit=PAGE)`, whose default `include_edges=True`
asks for `[[edges]]`; the 2022 client turns each item and each edge's end into an item object and merges them
into its local store. Only the paging is timed; the client is made (and its base schema sent) before the clock
starts. Prints one JSON object: `{"items": …, "items_per_s": …}`.
"""

import json
import sys
import time
from typing import List, Optional

from pymemri.data.schema import Item, Person
from pymemri.pod.client import PodClient


class Dog(Item):
    "The bench's Dog, as a 2022 plugin would declare it."
    name: Optional[str] = None
    age: Optional[int] = None
    weight: Optional[float] = None
    bites: Optional[bool] = None
    owner: List[Person] = []


def main(url: str, owner: str, key: str, page: int):
    client = PodClient(url=url, owner_key=owner, database_key=key, create_account=False)
    client.registered_classes["Dog"] = Dog  # declared already by the bench; add_to_schema would only send it again
    start, count = time.perf_counter(), 0
    for found in client.search_paginate({"type": "Dog"}, limit=page):
        assert all(len(dog.owner) == 1 for dog in found), "a Dog came back without its owner edge"
        count += len(found)
    seconds = time.perf_counter() - start
    print(json.dumps({"items": count, "items_per_s": count / seconds}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
