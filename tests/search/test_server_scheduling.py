"""The server's search scheduling: small requests first, a large one in pieces, pieces of a client that hung
up never searched (order and counts, no timing)."""

from __future__ import annotations

import asyncio
import threading

from hiexp.search.server import QueryBatcher


class GatedRetriever:
    """Records every search call; each call waits until the test lets it go."""

    def __init__(self):
        self.calls: list[list[str]] = []
        self.gate = threading.Semaphore(0)

    def search(self, queries, k=3):
        self.calls.append(list(queries))
        self.gate.acquire()
        return [[f"{q}/{i}" for i in range(k)] for q in queries]


async def until(condition, steps=2000):
    for _ in range(steps):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never held")


def test_a_small_request_is_searched_between_the_pieces_of_a_large_one():
    async def scenario():
        retriever = GatedRetriever()
        batcher = QueryBatcher(retriever, max_in_flight=1, max_batch_queries=512, chunk_queries=64)
        large = asyncio.ensure_future(batcher.search([f"big{i}" for i in range(200)], 2, 30.0))
        await until(lambda: len(retriever.calls) == 1)
        small = asyncio.ensure_future(batcher.search(["small"], 2, 30.0))
        await asyncio.sleep(0.05)
        for _ in range(4):
            retriever.gate.release()
        rows = await asyncio.wait_for(large, 10)
        assert (await small) == [["small/0", "small/1"]]
        sizes = [len(c) for c in retriever.calls]
        assert sizes[0] == 64 and retriever.calls[1][0] == "small"  # the small one right after the first piece
        assert sum(sizes) == 201 and max(sizes) <= 64 + 1
        assert [row[0] for row in rows] == [f"big{i}/0" for i in range(200)]  # pieces put back in order

    asyncio.run(scenario())


def test_the_pieces_of_a_client_that_hung_up_are_not_searched():
    async def scenario():
        retriever = GatedRetriever()
        batcher = QueryBatcher(retriever, max_in_flight=1, max_batch_queries=512, chunk_queries=64)
        gone = asyncio.get_running_loop().create_future()
        large = asyncio.ensure_future(batcher.search([f"big{i}" for i in range(512)], 2, 30.0, gone))
        await until(lambda: len(retriever.calls) == 1)
        gone.set_result(None)  # the client closed its connection during the first piece
        assert await large is None
        retriever.gate.release()
        after = asyncio.ensure_future(batcher.search(["next"], 2, 30.0))
        await until(lambda: len(retriever.calls) == 2)
        retriever.gate.release()
        assert await asyncio.wait_for(after, 10) == [["next/0", "next/1"]]
        assert [len(c) for c in retriever.calls] == [64, 1] and batcher.queued_queries == 0

    asyncio.run(scenario())


def test_concurrent_pieces_of_one_request_all_arrive():
    async def scenario():
        class Instant:
            def search(self, queries, k=3):
                return [[q] * k for q in queries]

        batcher = QueryBatcher(Instant(), max_in_flight=4, max_batch_queries=100, chunk_queries=7)
        requests = [[f"r{n}q{i}" for i in range(n * 13 + 1)] for n in range(12)]
        answers = await asyncio.wait_for(asyncio.gather(*[batcher.search(r, 1, 30.0) for r in requests]), 30)
        assert [[row[0] for row in a] for a in answers] == requests
        assert batcher.queued_queries == 0

    asyncio.run(scenario())
