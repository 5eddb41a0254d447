"""The floor: the least code that sends the same requests and writes the answers.

    python -m tests.bench.minimal_client INPUT OUTPUT BASE_URL CONCURRENCY

No templates, retries, ordering, ids or validation: sluice's overhead is measured
against this loop.
"""

from __future__ import annotations

import asyncio
import sys

import aiohttp
import orjson


async def main(source: str, output: str, base_url: str, concurrency: int) -> None:
    url = f"{base_url}/chat/completions"
    with open(source, "rb") as lines, open(output, "wb") as out:

        async def worker(session: aiohttp.ClientSession) -> None:
            for line in lines:
                item = orjson.loads(line)
                content = f"Review: {item['text']}"
                body = {"model": "sim-chat", "messages": [{"role": "user", "content": content}]}
                async with session.post(url, data=orjson.dumps(body)) as response:
                    answer = orjson.loads(await response.read())
                item["output"] = answer["choices"][0]["message"]["content"]
                out.write(orjson.dumps(item) + b"\n")

        connector = aiohttp.TCPConnector(limit=concurrency)
        headers = {"Content-Type": "application/json"}
        async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
            await asyncio.gather(*(worker(session) for _ in range(concurrency)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
